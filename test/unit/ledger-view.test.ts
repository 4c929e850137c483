// The record's API view: periods from dates and date-times, months, signed decimals, CSV cells a
// spreadsheet cannot run, and query parsing that names the parameter at fault.
import assert from 'node:assert/strict';
import { monthPeriod, parseQuery, periodOf, signedDecimal, spreadsheetSafe } from '../../api/ledger-view';
import { ProblemError } from '../../api/problem';
import * as s from '../../api/schemas';

const field = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 400);
    return err.extra.field;
  }
  assert.fail('expected a 400');
};

describe('api/ledger-view', () => {
  it('a day as `to` includes the whole day; a date-time is the instant; from after to is refused', () => {
    assert.deepEqual(periodOf('2026-01-01', '2026-01-31'), {
      from: Date.UTC(2026, 0, 1),
      to: Date.UTC(2026, 1, 1),
    });
    assert.deepEqual(periodOf('2026-01-01T10:00:00+02:00', '2026-01-01T09:00:00Z'), {
      from: Date.UTC(2026, 0, 1, 8),
      to: Date.UTC(2026, 0, 1, 9),
    });
    assert.deepEqual(periodOf('2026-01-05', '2026-01-05'), { from: Date.UTC(2026, 0, 5), to: Date.UTC(2026, 0, 6) });
    assert.deepEqual(periodOf(undefined, undefined), { from: undefined, to: undefined });
    assert.equal(
      field(() => periodOf('2026-01-02', '2026-01-01')),
      'from',
    );
    assert.equal(
      field(() => periodOf('2026-01-01T09:00:00Z', '2026-01-01T09:00:00Z')),
      'from',
    );
  });

  it('months run from their first day to the next month’s, across the year end', () => {
    assert.deepEqual(monthPeriod('2026-12'), { from: Date.UTC(2026, 11, 1), to: Date.UTC(2027, 0, 1) });
    assert.deepEqual(monthPeriod('2024-02'), { from: Date.UTC(2024, 1, 1), to: Date.UTC(2024, 2, 1) });
  });

  it('signed decimals by the currency’s exponent', () => {
    assert.equal(signedDecimal(-5, 'USD'), '-0.05');
    assert.equal(signedDecimal(1234, 'USD'), '12.34');
    assert.equal(signedDecimal(-1234, 'JPY'), '-1234');
    assert.equal(signedDecimal(0, 'EUR'), '0.00');
  });

  it('free text that a spreadsheet would run as a formula is opened as text', () => {
    for (const text of ['=HYPERLINK("http://x")', '+1', '-2+3', '@SUM(A1)', '\tx'])
      assert.equal(spreadsheetSafe(text), `'${text}`);
    assert.equal(spreadsheetSafe('E-book'), 'E-book');
  });

  it('query parameters: unknown, missing or malformed ones are named', () => {
    const spec = { limit: { schema: s.PageLimit }, month: { schema: s.StatementMonth, required: true } };
    assert.deepEqual(parseQuery({ limit: '20', month: '2026-01' }, spec), { limit: 20, month: '2026-01' });
    assert.equal(
      field(() => parseQuery({ month: '2026-01', limt: '5' }, spec)),
      'limt',
    );
    assert.equal(
      field(() => parseQuery({}, spec)),
      'month',
    );
    assert.equal(
      field(() => parseQuery({ month: '2026-01', limit: '0' }, spec)),
      'limit',
    );
    assert.equal(
      field(() => parseQuery({ month: ['2026-01', '2026-02'] }, spec)),
      'month',
    );
  });
});
