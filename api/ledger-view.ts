// The record as the API shows it: query parameters parsed into typed values (400 naming the one at
// fault), periods as epoch-ms ranges, recorded rows and statements as JSON, statements as CSV rows.
import type { z } from 'zod';
import { formatDecimal } from '../fps/money';
import { operationData } from '../store/operation-events';
import type { OperationRow } from '../store/schema';
import type { Statement } from '../store/statement';
import { flatParams } from './context';
import { ProblemError } from './problem';

export const invalidParameter = (field: string, detail: string) =>
  new ProblemError(400, 'invalid_parameter', `${field}: ${detail}`, { field });

export type QuerySpec = Record<string, { schema: z.ZodType; required?: boolean; description?: string }>;
type Parsed<Q extends QuerySpec> = { [K in keyof Q]?: z.infer<Q[K]['schema']> };

/** The query parsed by `spec`: unknown, repeated, missing required or malformed parameters are 400 naming it. */
export function parseQuery<Q extends QuerySpec>(query: unknown, spec: Q): Parsed<Q> {
  const params = flatParams(query);
  const parsed: Record<string, unknown> = {};
  for (const name of Object.keys(params))
    if (!Object.hasOwn(spec, name)) throw invalidParameter(name, 'unknown parameter');
  for (const [name, { schema, required }] of Object.entries(spec)) {
    const raw = params[name];
    if (raw === undefined) {
      if (required) throw invalidParameter(name, 'required');
      continue;
    }
    const result = schema.safeParse(raw);
    if (!result.success) throw invalidParameter(name, result.error.issues[0]?.message ?? 'invalid');
    parsed[name] = result.data;
  }
  return parsed as Parsed<Q>;
}

const DAY_MS = 86_400_000;
const isDay = (value: string) => /^\d{4}-\d{2}-\d{2}$/.test(value);
const dayStart = (day: string) => Date.parse(`${day}T00:00:00Z`);
export const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * [from, to) in epoch ms. A day as `from` starts at its 00:00 UTC; a day as `to` includes that day
 * (ends at the next 00:00 UTC); a date-time is the instant itself. An empty period is a 400 on `from`.
 */
export function periodOf(from: string | undefined, to: string | undefined): { from?: number; to?: number } {
  const start = from === undefined ? undefined : isDay(from) ? dayStart(from) : Date.parse(from);
  const end = to === undefined ? undefined : isDay(to) ? dayStart(to) + DAY_MS : Date.parse(to);
  // [from, to) must hold something: a later (or, for instants, equal) from is the caller's mistake.
  if (start !== undefined && end !== undefined && start >= end) throw invalidParameter('from', 'must be before to');
  return { from: start, to: end };
}

/** A month, YYYY-MM, as [its first 00:00 UTC, the next month's). */
export function monthPeriod(month: string): { from: number; to: number } {
  const [year, m] = month.split('-').map(Number);
  return { from: Date.UTC(year, m - 1, 1), to: Date.UTC(year, m, 1) };
}

/** Minor units → decimal string, signed (a running figure can go below zero). */
export const signedDecimal = (minor: number, currency: string) =>
  minor < 0 ? `-${formatDecimal(-minor, currency)}` : formatDecimal(minor, currency);
const recordedMoney = (minor: number, currency: string) => ({ amount: signedDecimal(minor, currency), currency });

const REFUNDABLE = new Set(['purchase', 'capture']);

/** One recorded row for the wire: operationData plus whose it is and when. */
export function recordedOperation(row: OperationRow) {
  return {
    ...operationData(row),
    instrumentId: row.instrument_id,
    customerId: row.customer_id,
    instrumentType: row.instrument_type,
    refundedAmount: REFUNDABLE.has(row.operation) ? recordedMoney(row.refunded_amount, row.currency) : undefined,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

/** What the running figure is called: a prepaid balance, a postpaid debt; single use has none. */
export function figureOf(instrumentType: string): 'balance' | 'debt' | undefined {
  return instrumentType === 'prepaid' ? 'balance' : instrumentType === 'postpaid' ? 'debt' : undefined;
}

const capitalised = (word: string) => word[0].toUpperCase() + word.slice(1);

export function renderStatement(
  statement: Statement,
  scope: { instrumentId: string; customerId?: string; currency: string; from?: number; to?: number },
) {
  const currency = statement.currency ?? scope.currency;
  const figure = figureOf(statement.instrumentType);
  const figures = figure
    ? {
        [`opening${capitalised(figure)}`]: recordedMoney(statement.opening, currency),
        [`closing${capitalised(figure)}`]: recordedMoney(statement.closing, currency),
      }
    : {};
  return {
    instrumentId: scope.instrumentId,
    customerId: scope.customerId ?? statement.lines[0]?.row.customer_id,
    type: statement.instrumentType,
    currency,
    from: scope.from === undefined ? null : isoDay(scope.from),
    // The period is [from, to): its last day is the one before `to`.
    to: scope.to === undefined ? null : isoDay(scope.to - 1),
    ...figures,
    lines: statement.lines.map(({ row, running }) => ({
      date: new Date(row.created_at).toISOString(),
      operation: row.operation,
      id: row.operation_id,
      amount: recordedMoney(row.amount, row.currency),
      status: row.status,
      transactionId: row.transaction_id ?? undefined,
      description: row.description ?? undefined,
      ...(figure ? { [figure]: recordedMoney(running, currency) } : {}),
    })),
    totals: Object.fromEntries(
      Object.entries(statement.totals).map(([operation, minor]) => [operation, recordedMoney(minor, currency)]),
    ),
  };
}

/** Free text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is opened as text instead. */
export const spreadsheetSafe = (text: string) => (/^[=+\-@\t\r]/.test(text) ? `'${text}` : text);

export const STATEMENT_CSV_COLUMNS = [
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
] as const;

/**
 * A statement as CSV records: an `opening` row, one row per line, a `closing` row. `running` is the
 * balance (prepaid) or debt (postpaid) after the row; amounts are decimal strings, never floats.
 */
export function statementCsvRows(
  statement: Statement,
  scope: { instrumentId: string; currency: string; from?: number; to?: number },
): string[][] {
  const currency = statement.currency ?? scope.currency;
  const figure = figureOf(statement.instrumentType);
  const running = (minor: number) => (figure ? signedDecimal(minor, currency) : '');
  const edge = (operation: string, at: number | undefined, minor: number) => [
    scope.instrumentId,
    statement.instrumentType,
    at === undefined ? '' : new Date(at).toISOString(),
    operation,
    '',
    '',
    '',
    currency,
    running(minor),
    '',
    '',
  ];
  return [
    edge('opening', scope.from, statement.opening),
    ...statement.lines.map(({ row, running: after }) => [
      scope.instrumentId,
      statement.instrumentType,
      new Date(row.created_at).toISOString(),
      row.operation,
      row.operation_id,
      row.status,
      formatDecimal(row.amount, row.currency),
      row.currency,
      running(after),
      row.transaction_id ?? '',
      spreadsheetSafe(row.description ?? ''),
    ]),
    edge('closing', scope.to, statement.closing),
  ];
}
