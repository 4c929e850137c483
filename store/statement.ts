// Statements computed from the record: the opening figure from every row before `from`, the lines
// in [from, to), the closing figure. Only successful operations move money; the rest are listed.
import type { OperationRow } from './schema';
import type { LedgerStore } from './ledger';
import { debtAfter } from '../machines/postpaid';

/**
 * How one successful operation moves a prepaid balance (+) or a postpaid debt (+), in minor units,
 * unclamped: for sums over many instruments at once (observability/business-gauges.ts), where the
 * per-instrument order that figureAfter needs is not at hand.
 */
export function effectOf(instrumentType: string, row: Pick<OperationRow, 'operation' | 'amount' | 'status'>): number {
  if (row.status !== 'Success') return 0;
  if (instrumentType === 'prepaid') return figureAfter(instrumentType, 0, row);
  if (instrumentType === 'postpaid') {
    if (row.operation === 'purchase') return row.amount;
    if (row.operation === 'refund' || row.operation === 'settle' || row.operation === 'writeOff') return -row.amount;
  }
  return 0;
}

/**
 * A balance (prepaid) or debt (postpaid) after one row, in minor units; only successful operations
 * move money. Postpaid follows the machine's own rule (machines/postpaid.ts debtAfter: the debt
 * never goes below zero), so a statement's closing debt is the workflow's.
 */
export function figureAfter(
  instrumentType: string,
  figure: number,
  row: Pick<OperationRow, 'operation' | 'amount' | 'status'>,
): number {
  if (row.status !== 'Success') return figure;
  if (instrumentType === 'prepaid') {
    if (row.operation === 'fund' || row.operation === 'refund') return figure + row.amount;
    if (row.operation === 'purchase') return figure - row.amount;
    return figure;
  }
  if (instrumentType === 'postpaid') return debtAfter(figure, row.operation, row.amount);
  return figure;
}

export interface StatementLine {
  row: OperationRow;
  /** Balance (prepaid) or debt (postpaid) after this line. */
  running: number;
}

export interface Statement {
  instrumentType: string;
  currency: string | undefined;
  opening: number;
  closing: number;
  lines: StatementLine[];
  /** Successful amounts by operation. */
  totals: Record<string, number>;
}

export async function instrumentStatement(
  store: LedgerStore,
  instrumentId: string,
  instrumentType: string,
  from?: number,
  to?: number,
): Promise<Statement> {
  const before = from === undefined ? [] : await store.operationsBetween({ instrumentId }, undefined, from);
  const rows = await store.operationsBetween({ instrumentId }, from, to);
  const opening = before.reduce((figure, row) => figureAfter(instrumentType, figure, row), 0);
  let running = opening;
  const totals: Record<string, number> = {};
  const lines = rows.map((row) => {
    running = figureAfter(instrumentType, running, row);
    if (row.status === 'Success') totals[row.operation] = (totals[row.operation] ?? 0) + row.amount;
    return { row, running };
  });
  return {
    instrumentType,
    currency: rows[0]?.currency ?? before[0]?.currency,
    opening,
    closing: running,
    lines,
    totals,
  };
}

export interface InstrumentStatement extends Statement {
  instrumentId: string;
}

/**
 * A customer's statement for [from, to): one statement per instrument that has lines in the period
 * or a non-zero opening figure, ordered by instrument id.
 */
export async function customerStatement(
  store: LedgerStore,
  customerId: string,
  from: number,
  to: number,
): Promise<InstrumentStatement[]> {
  const instruments = await store.instrumentsOfCustomer(customerId, to);
  const statements: InstrumentStatement[] = [];
  for (const instrument of instruments) {
    const statement = await instrumentStatement(store, instrument.instrument_id, instrument.instrument_type, from, to);
    if (statement.lines.length === 0 && statement.opening === 0) continue;
    statements.push({
      instrumentId: instrument.instrument_id,
      ...statement,
      currency: statement.currency ?? instrument.currency,
    });
  }
  return statements;
}
