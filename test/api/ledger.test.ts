// The record's read API against the real stack (processes, the SQLite record): money moved through
// the API is paged back newest first, filtered, looked up by purchase, and stated — and the
// statements' closing figures are the workflow's own balance and debt.
import assert from 'node:assert/strict';
import { activeInstrument, call, getStack, until, type Answer, type Stack } from './stack';

function assertProblem(answer: Answer, status: number, code: string, field?: string) {
  assert.equal(answer.status, status, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(answer.body.code, code, answer.text);
  if (field !== undefined) assert.equal(answer.body.field, field, answer.text);
}

/** RFC 4180 records (quoted fields, doubled quotes, CRLF or LF), written here so csv-stringify is checked by another hand. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') field += text[++i];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

/** Decimal strings → cents, by string (no floats near money). */
const cents = (decimal: string) => {
  const negative = decimal.startsWith('-');
  const [whole, fraction = ''] = decimal.replace('-', '').split('.');
  const value = Number(whole) * 100 + Number(fraction.padEnd(2, '0'));
  return negative ? -value : value;
};
const usd = (amount: string) => ({ amount, currency: 'USD' });
const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

describe('api: the record (transactions, purchases, statements) against the real stack', function () {
  this.timeout(120_000);
  const customerId = `ledger-${Date.now().toString(36)}`;
  let stack: Stack;
  let prepaid: string;
  let postpaid: string;

  const get = (path: string, headers: Record<string, string> = {}) => call(stack, 'GET', path, { headers });
  const post = async (path: string, key: string, body: Record<string, unknown>) => {
    const answer = await call(stack, 'POST', path, { body, headers: { 'idempotency-key': key } });
    assert.ok([200, 201, 202, 402].includes(answer.status), `${path} ${key}: ${answer.status} ${answer.text}`);
    return answer;
  };
  const buy = (instrumentId: string, key: string, amount: string) =>
    post(`/instruments/${instrumentId}/purchases`, key, { amount, currency: 'USD', description: `item ${key}` });
  /** The workflow's view once nothing is in flight and the record holds no Pending row. */
  const settled = (instrumentId: string) =>
    until(
      `${instrumentId} quiet`,
      async () => {
        const snapshot = await get(`/instruments/${instrumentId}`);
        const pending = await get(`/instruments/${instrumentId}/transactions?status=Pending`);
        return snapshot.body.pending.length === 0 && pending.body.data.length === 0 && snapshot.body;
      },
      30_000,
    );
  const allPages = async (instrumentId: string, query: string) => {
    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Answer = await get(
        `/instruments/${instrumentId}/transactions?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      assert.equal(page.status, 200, page.text);
      seen.push(...page.body.data);
      cursor = page.body.nextCursor;
      pages++;
      assert.ok(pages < 100, 'paging ends');
    } while (cursor);
    return { seen, pages };
  };

  before(async () => {
    stack = await getStack();
    [{ instrumentId: prepaid }, { instrumentId: postpaid }] = await Promise.all([
      activeInstrument(stack, customerId, { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' }),
      activeInstrument(stack, customerId, {
        type: 'postpaid',
        creditLimit: '50.00',
        globalAmountLimit: '500.00',
        currency: 'USD',
      }),
    ]);
    for (const [key, amount] of [
      ['p1', '1.00'],
      ['p2', '0.50'],
      ['p3', '2.25'],
      ['p4', '0.75'],
      ['pending', '1.13'],
      ['declined', '0.51'],
    ])
      await buy(prepaid, key, amount);
    await post(`/instruments/${prepaid}/refunds`, 'r3a', { purchaseId: 'p3', amount: '1.00', currency: 'USD' });
    await post(`/instruments/${prepaid}/refunds`, 'r3b', { purchaseId: 'p3', amount: '0.25', currency: 'USD' });
    await post(`/instruments/${prepaid}/refunds`, 'r2', { purchaseId: 'p2' });

    await buy(postpaid, 'q1', '2.49');
    await buy(postpaid, 'q2', '4.99');
    await post(`/instruments/${postpaid}/settle`, 's1', { amount: '3.00', currency: 'USD' });
    await settled(postpaid);
    await buy(postpaid, 'q3', '1.50');
    await post(`/instruments/${postpaid}/refunds`, 'rq3', { purchaseId: 'q3' });
    await buy(postpaid, 'q4', '0.20');
  });

  describe('GET /instruments/{id}/transactions', () => {
    it('pages of 2 cover every recorded operation once, newest first', async () => {
      await settled(prepaid);
      const whole = await get(`/instruments/${prepaid}/transactions?limit=500`);
      assert.equal(whole.status, 200, whole.text);
      assert.equal(whole.body.nextCursor, null);
      // fund (the initial one) + 6 purchases + 3 refunds
      assert.equal(whole.body.data.length, 10, whole.text);
      const { seen, pages } = await allPages(prepaid, 'limit=2');
      assert.equal(pages, 5);
      assert.deepEqual(
        seen.map((t) => t.callerReference),
        whole.body.data.map((t: any) => t.callerReference),
      );
      assert.equal(new Set(seen.map((t) => t.callerReference)).size, seen.length, 'no duplicates');
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].createdAt >= seen[i].createdAt, 'newest first');
      assert.equal(seen.at(-1).operation, 'fund', 'the initial funding is the oldest');
      const p1 = seen.find((t) => t.id === 'p1');
      assert.deepEqual(p1.amount, usd('1.00'));
      assert.equal(p1.status, 'Success');
      assert.equal(p1.instrumentId, prepaid);
      assert.equal(p1.customerId, customerId);
      assert.equal(p1.instrumentType, 'prepaid');
      assert.equal(p1.description, 'item p1');
      assert.match(p1.transactionId, /^\w+$/);
      // The default page is 50.
      assert.equal((await get(`/instruments/${prepaid}/transactions`)).body.data.length, 10);
    });

    it('filters by operation, status and time, and combines them', async () => {
      const refunds = (await get(`/instruments/${prepaid}/transactions?operation=refund`)).body.data;
      assert.deepEqual(refunds.map((t: any) => t.id).sort(), ['r2', 'r3a', 'r3b']);
      assert.ok(refunds.every((t: any) => t.parentOperationId === 'p2' || t.parentOperationId === 'p3'));
      const declined = (await get(`/instruments/${prepaid}/transactions?status=Declined`)).body.data;
      assert.deepEqual(
        declined.map((t: any) => [t.id, t.declineCode]),
        [['declined', 'TransactionDenied']],
      );
      const resolved = (await get(`/instruments/${prepaid}/transactions?operation=purchase&status=Success`)).body.data;
      assert.deepEqual(resolved.map((t: any) => t.id).sort(), ['p1', 'p2', 'p3', 'p4', 'pending']);
      const p3 = resolved.find((t: any) => t.id === 'p3');
      assert.deepEqual(p3.refundedAmount, usd('1.25'));

      const around = `from=${day(-1)}&to=${day(1)}`;
      assert.equal((await get(`/instruments/${prepaid}/transactions?${around}`)).body.data.length, 10);
      const future = await get(`/instruments/${prepaid}/transactions?from=${day(2)}`);
      assert.equal(future.status, 200, 'a known instrument with nothing in the range is an empty page');
      assert.deepEqual(future.body, { data: [], nextCursor: null });
      assert.equal((await get(`/instruments/${prepaid}/transactions?to=2020-01-01T00:00:00Z`)).body.data.length, 0);
      // A date-time bound is the instant: everything before the newest row's time excludes it.
      const newest = (await get(`/instruments/${prepaid}/transactions?limit=1`)).body.data[0];
      const before = (await get(`/instruments/${prepaid}/transactions?to=${encodeURIComponent(newest.createdAt)}`)).body
        .data;
      assert.ok(!before.some((t: any) => t.callerReference === newest.callerReference));
      // Paging with a filter stays inside it.
      const { seen } = await allPages(prepaid, 'limit=1&operation=refund');
      assert.deepEqual(seen.map((t) => t.id).sort(), ['r2', 'r3a', 'r3b']);
    });

    it('400 problem+json naming the parameter for a bad limit, cursor, operation, status or range', async () => {
      const bad = (query: string) => get(`/instruments/${prepaid}/transactions?${query}`);
      for (const [query, field] of [
        ['limit=0', 'limit'],
        ['limit=501', 'limit'],
        ['limit=ten', 'limit'],
        ['limit=2.5', 'limit'],
        ['cursor=not-a-cursor', 'cursor'],
        [`cursor=${Buffer.from('[1]').toString('base64url')}`, 'cursor'],
        ['operation=steal', 'operation'],
        ['status=Maybe', 'status'],
        ['from=2026-13-01', 'from'],
        ['to=yesterday', 'to'],
        ['from=2026-01-01T10:00:00', 'from'],
        [`from=${day(1)}&to=${day(-1)}`, 'from'],
        ['colour=blue', 'colour'],
      ])
        assertProblem(await bad(query), 400, 'invalid_parameter', field);
      assertProblem(await bad('limit=1&limit=2'), 400, 'malformed_request', 'limit');
    });

    it('404 for an instrument with no workflow and no record; 401 without a key', async () => {
      assertProblem(await get('/instruments/ins_nosuchinstrument00/transactions'), 404, 'instrument_not_found');
      assertProblem(await get('/instruments/ins_nosuchinstrument00/transactions?limit=0'), 400, 'invalid_parameter');
      assertProblem(
        await call(stack, 'GET', `/instruments/${prepaid}/transactions`, { key: null }),
        401,
        'missing_api_key',
      );
    });
  });

  describe('GET /instruments/{id}/purchases/{purchaseId}', () => {
    it('answers the recorded purchase with refundedAmount and its refunds', async () => {
      const p3 = await get(`/instruments/${prepaid}/purchases/p3`);
      assert.equal(p3.status, 200, p3.text);
      assert.equal(p3.body.id, 'p3');
      assert.equal(p3.body.outcome, 'approved');
      assert.equal(p3.body.transactionStatus, 'Success');
      assert.deepEqual(p3.body.amount, { amount: '2.25', minorUnits: 225, currency: 'USD' });
      assert.deepEqual(p3.body.refundedAmount, { amount: '1.25', minorUnits: 125, currency: 'USD' });
      assert.equal(p3.body.description, 'item p3');
      assert.deepEqual(
        p3.body.refunds.map((r: any) => [r.id, r.amount.amount, r.status]),
        [
          ['r3a', '1.00', 'Success'],
          ['r3b', '0.25', 'Success'],
        ],
      );
      assert.equal(p3.body.links.self, `/instruments/${prepaid}/purchases/p3`);
      const declined = await get(`/instruments/${prepaid}/purchases/declined`);
      assert.equal(declined.status, 200, 'a decline is a fact here, not an error');
      assert.equal(declined.body.outcome, 'declined');
      assert.equal(declined.body.reason.code, 'TransactionDenied');
      assert.deepEqual(declined.body.refunds, []);
      const pending = await get(`/instruments/${prepaid}/purchases/pending`);
      assert.equal(pending.body.outcome, 'approved', 'the IPN resolved it');
    });

    it('404 for an unknown purchase or instrument', async () => {
      assertProblem(await get(`/instruments/${prepaid}/purchases/no-such-purchase`), 404, 'unknown_purchase');
      assertProblem(await get(`/instruments/${prepaid}/purchases/r2`), 404, 'unknown_purchase');
      assertProblem(await get('/instruments/ins_nosuchinstrument00/purchases/p1'), 404, 'instrument_not_found');
    });
  });

  describe('GET /instruments/{id}/statement', () => {
    it('prepaid: opening and closing balance, running lines, totals; closing is the workflow’s balance', async () => {
      const snapshot = await settled(prepaid);
      const answer = await get(`/instruments/${prepaid}/statement?from=${day(-1)}&to=${day(1)}`);
      assert.equal(answer.status, 200, answer.text);
      const st = answer.body;
      assert.equal(st.type, 'prepaid');
      assert.equal(st.customerId, customerId);
      assert.equal(st.from, day(-1));
      assert.equal(st.to, day(1));
      assert.deepEqual(st.openingBalance, usd('0.00'));
      assert.deepEqual(st.closingBalance, { amount: snapshot.balance.amount, currency: 'USD' });
      assert.equal(st.openingDebt, undefined);
      assert.equal(st.lines.length, 10);
      assert.deepEqual(st.lines.at(-1).balance, st.closingBalance);
      // 20.00 funded − (1.00 + 0.50 + 2.25 + 0.75 + 1.13) bought + 1.75 refunded; the decline moved nothing.
      assert.deepEqual(st.closingBalance, usd('16.12'));
      assert.deepEqual(st.totals, { fund: usd('20.00'), purchase: usd('5.63'), refund: usd('1.75') });
      let running = 0;
      for (const line of st.lines) {
        if (line.status === 'Success') running += (line.operation === 'purchase' ? -1 : 1) * cents(line.amount.amount);
        assert.equal(cents(line.balance.amount), running, `${line.id} running balance`);
      }
      // Without a period: everything so far, the same closing.
      assert.deepEqual((await get(`/instruments/${prepaid}/statement`)).body.closingBalance, st.closingBalance);
      // A period after everything opens and closes on the same balance, with no lines.
      const later = (await get(`/instruments/${prepaid}/statement?from=${day(2)}&to=${day(3)}`)).body;
      assert.deepEqual(
        [later.openingBalance, later.closingBalance, later.lines],
        [st.closingBalance, st.closingBalance, []],
      );
    });

    it('postpaid: opening and closing debt; closing is the workflow’s debt', async () => {
      const snapshot = await settled(postpaid);
      const st = (await get(`/instruments/${postpaid}/statement?from=${day(-1)}&to=${day(0)}`)).body;
      assert.equal(st.type, 'postpaid');
      assert.deepEqual(st.openingDebt, usd('0.00'));
      // 2.49 + 4.99 − 3.00 settled + 1.50 − 1.50 refunded + 0.20
      assert.deepEqual(st.closingDebt, usd('4.68'));
      assert.deepEqual(st.closingDebt, { amount: snapshot.debt.amount, currency: 'USD' });
      assert.equal(st.closingBalance, undefined);
      assert.deepEqual(st.lines.at(-1).debt, st.closingDebt);
      assert.deepEqual(st.totals.settle, usd('3.00'));
    });

    it('Accept: text/csv is a CSV download whose rows sum to the statement', async () => {
      const json = (await get(`/instruments/${prepaid}/statement`)).body;
      const answer = await call(stack, 'GET', `/instruments/${prepaid}/statement?from=${day(-1)}&to=${day(1)}`, {
        headers: { accept: 'text/csv' },
      });
      assert.equal(answer.status, 200, answer.text);
      assert.match(answer.headers.get('content-type') ?? '', /^text\/csv/);
      assert.match(
        answer.headers.get('content-disposition') ?? '',
        new RegExp(`^attachment; filename="?statement-${prepaid}-${day(-1)}-${day(1)}\\.csv"?$`),
      );
      const [header, ...rows] = parseCsv(answer.text);
      assert.deepEqual(header, [
        'instrument_id',
        'instrument_type',
        'date',
        'operation',
        'id',
        'status',
        'amount',
        'currency',
        'running',
        'transaction_id',
        'description',
      ]);
      const col = (name: string) => header.indexOf(name);
      assert.ok(rows.every((r) => r.length === header.length));
      assert.equal(rows[0][col('operation')], 'opening');
      assert.equal(rows.at(-1)![col('operation')], 'closing');
      assert.equal(rows.at(-1)![col('running')], json.closingBalance.amount);
      const lines = rows.slice(1, -1);
      assert.equal(lines.length, json.lines.length);
      let balance = cents(rows[0][col('running')]);
      for (const r of lines) {
        if (r[col('status')] === 'Success')
          balance += (r[col('operation')] === 'purchase' ? -1 : 1) * cents(r[col('amount')]);
        assert.equal(cents(r[col('running')]), balance);
        assert.match(r[col('amount')], /^\d+\.\d\d$/, 'decimal amounts');
      }
      assert.equal(balance, cents(json.closingBalance.amount));
      const purchases = lines
        .filter((r) => r[col('operation')] === 'purchase' && r[col('status')] === 'Success')
        .reduce((sum, r) => sum + cents(r[col('amount')]), 0);
      assert.equal(purchases, cents(json.totals.purchase.amount));
      // format=csv does the same for links that cannot set Accept.
      const linked = await get(`/instruments/${prepaid}/statement?format=csv`);
      assert.match(linked.headers.get('content-type') ?? '', /^text\/csv/);
      assert.equal(parseCsv(linked.text).length, json.lines.length + 3);
    });

    it('400 for bad dates and from after to; 404 for an unknown instrument', async () => {
      for (const [query, field] of [
        [`from=${day(1)}&to=${day(-1)}`, 'from'],
        ['from=2026-02-30', 'from'],
        ['to=2026-01-01T00:00:00Z', 'to'],
        ['format=xml', 'format'],
        ['month=2026-01', 'month'],
      ])
        assertProblem(await get(`/instruments/${prepaid}/statement?${query}`), 400, 'invalid_parameter', field);
      assertProblem(await get('/instruments/ins_nosuchinstrument00/statement'), 404, 'instrument_not_found');
    });
  });

  describe('GET /customers/{customerId}/statement', () => {
    it("a month across the customer's instruments, each with its own opening and closing", async () => {
      const [pre, postp] = await Promise.all([settled(prepaid), settled(postpaid)]);
      const month = new Date().toISOString().slice(0, 7);
      const answer = await get(`/customers/${customerId}/statement?month=${month}`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.body.customerId, customerId);
      assert.equal(answer.body.month, month);
      assert.equal(answer.body.from, `${month}-01`);
      const byId = new Map(answer.body.instruments.map((i: any) => [i.instrumentId, i]));
      assert.deepEqual([...byId.keys()].sort(), [prepaid, postpaid].sort());
      const a: any = byId.get(prepaid);
      const b: any = byId.get(postpaid);
      assert.deepEqual(a.closingBalance, { amount: pre.balance.amount, currency: 'USD' });
      assert.deepEqual(b.closingDebt, { amount: postp.debt.amount, currency: 'USD' });
      assert.equal(a.lines.length, 10);

      const csv = await call(stack, 'GET', `/customers/${customerId}/statement?month=${month}`, {
        headers: { accept: 'text/csv, application/json;q=0.5' },
      });
      assert.equal(csv.status, 200, csv.text);
      assert.match(
        csv.headers.get('content-disposition') ?? '',
        new RegExp(`^attachment; filename="?statement-${customerId}-${month}\\.csv"?$`),
      );
      const [header, ...rows] = parseCsv(csv.text);
      const instrumentsInCsv = new Set(rows.map((r) => r[header.indexOf('instrument_id')]));
      assert.deepEqual([...instrumentsInCsv].sort(), [prepaid, postpaid].sort());
      const closing = rows.filter((r) => r[header.indexOf('operation')] === 'closing');
      assert.deepEqual(
        closing.map((r) => [r[0], r[header.indexOf('running')]]).sort(),
        [
          [prepaid, pre.balance.amount],
          [postpaid, postp.debt.amount],
        ].sort(),
      );
    });

    it('a month before anything was recorded is empty; a bad or missing month is 400', async () => {
      const empty = await get(`/customers/${customerId}/statement?month=2020-01`);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.body.instruments, []);
      assert.equal(empty.body.to, '2020-01-31');
      assertProblem(await get(`/customers/${customerId}/statement`), 400, 'invalid_parameter', 'month');
      assertProblem(await get(`/customers/${customerId}/statement?month=2026-13`), 400, 'invalid_parameter', 'month');
      assertProblem(await get(`/customers/${customerId}/statement?month=2026-1`), 400, 'invalid_parameter', 'month');
    });
  });
});
