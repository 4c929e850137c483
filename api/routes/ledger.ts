// The record's read API: an instrument's transactions (newest first, keyset pages), one purchase
// with its refunds at any age, and statements per instrument and per customer-month, as JSON or CSV.
// Everything is read from the ledger store; the workflow is asked only whether an instrument exists.
import type { Request, Response } from 'express';
import { stringify } from 'csv-stringify/sync';
import type { TransactionStatus } from '../../fps/actions';
import { decodeCursor, type LedgerStore } from '../../store/ledger';
import type { OperationRow } from '../../store/schema';
import type { OperationResult } from '../../workflows/messages';
import { customerStatement, instrumentStatement } from '../../store/statement';
import type { ApiContext } from '../context';
import {
  invalidParameter,
  monthPeriod,
  parseQuery,
  periodOf,
  recordedOperation,
  renderStatement,
  STATEMENT_CSV_COLUMNS,
  statementCsvRows,
  type QuerySpec,
} from '../ledger-view';
import { ProblemError } from '../problem';
import { money, renderOperation } from '../render';
import { route, type RouteSpec } from '../route';
import * as s from '../schemas';
import { parseWith } from '../validate';
import { instrumentIdParam } from './instruments';

const CSV = 'text/csv';

export const transactionsQuery = {
  limit: { schema: s.PageLimit, description: 'Page size, 1–500 (default 50)' },
  cursor: { schema: s.PageCursor, description: "The previous page's nextCursor" },
  operation: { schema: s.OperationKind, description: 'Only this operation' },
  status: { schema: s.RecordedStatus, description: 'Only this status' },
  from: { schema: s.TimeBound, description: 'Recorded at or after (a date: its 00:00 UTC)' },
  to: { schema: s.TimeBound, description: 'Recorded before (a date: the whole day is included)' },
} satisfies QuerySpec;

export const statementQuery = {
  from: { schema: s.StatementDay, description: 'First day (UTC); default: since the first record' },
  to: { schema: s.StatementDay, description: 'Last day (UTC, inclusive); default: up to now' },
  format: { schema: s.StatementFormat },
} satisfies QuerySpec;

const customerStatementQuery = {
  month: { schema: s.StatementMonth, required: true, description: 'The month (UTC), YYYY-MM' },
  format: { schema: s.StatementFormat },
} satisfies QuerySpec;

const problems = {
  400: 'A query parameter is invalid (invalid_parameter; `field` names it)',
  404: 'Unknown instrument (no workflow and nothing recorded)',
  503: 'No record configured (ledger_unavailable), or Temporal unreachable when asked whether the instrument exists',
};

/** Statements also come as CSV, chosen by Accept or format=csv. */
const asCsv = [{ contentType: CSV, schema: s.StatementCsv }];
const csvHeaders = { 'Content-Disposition': 'CSV only: attachment; filename="statement-….csv"' };

/** A recorded operation as the Update would have answered it. */
function resultFromRecord(row: OperationRow, state: string): OperationResult {
  const approved =
    row.status === 'Success' || row.status === 'Reserved' || (row.operation === 'void' && row.status === 'Cancelled');
  const status = row.status === 'Declined' ? undefined : (row.status as TransactionStatus);
  return {
    id: row.operation_id,
    operation: row.operation as OperationResult['operation'],
    outcome: row.status === 'Pending' ? 'pending' : approved ? 'approved' : 'declined',
    amount: row.amount,
    currency: row.currency,
    callerReference: row.caller_reference,
    transactionId: row.transaction_id ?? undefined,
    transactionStatus: status,
    reason: approved ? undefined : { code: row.decline_code ?? row.status, message: row.decline_reason ?? row.status },
    state,
  };
}

function requireLedger(ctx: ApiContext): LedgerStore {
  if (!ctx.ledger)
    throw new ProblemError(503, 'ledger_unavailable', 'this API runs without a record (LEDGER_DATABASE_URL)');
  return ctx.ledger;
}

/** 404 unless the record or Temporal knows the instrument; what the record says of it, if anything. */
async function knownInstrument(ctx: ApiContext, ledger: LedgerStore, instrumentId: string) {
  const facts = await ledger.instrumentFacts(instrumentId);
  if (facts) return { type: facts.instrument_type, currency: facts.currency, customerId: facts.customer_id };
  // Nothing recorded yet: the workflow says whether it exists (404 if not), and what it is.
  const snapshot = await ctx.instruments.snapshot(instrumentId);
  return { type: snapshot.type, currency: snapshot.currency, customerId: snapshot.customerId };
}

/** CSV when asked for by `format=csv` or an Accept header that prefers text/csv over JSON. */
function wantsCsv(req: Request, format: 'json' | 'csv' | undefined): boolean {
  if (format) return format === 'csv';
  return req.accepts(['application/json', CSV]) === CSV;
}

function sendCsv(res: Response, filename: string, rows: string[][]): void {
  res
    .status(200)
    .type(`${CSV}; charset=utf-8`)
    .attachment(filename)
    .send(stringify(rows, { header: true, columns: [...STATEMENT_CSV_COLUMNS] }));
}

/**
 * A page of the instrument's recorded operations for this request's query (400 naming a bad
 * parameter, 404 for an instrument nobody knows). Shared with the storefront's statement view.
 */
export async function sendTransactions(
  ctx: ApiContext,
  req: Request,
  res: Response,
  instrumentId: string,
  maxLimit = 500,
): Promise<void> {
  const ledger = requireLedger(ctx);
  const q = parseQuery(req.query, transactionsQuery);
  if (q.limit !== undefined && q.limit > maxLimit) throw invalidParameter('limit', `at most ${maxLimit} here`);
  if (q.cursor !== undefined && !decodeCursor(q.cursor))
    throw invalidParameter('cursor', "not a cursor this API handed out (use the last page's nextCursor)");
  const period = periodOf(q.from, q.to);
  const page = await ledger.transactions({
    instrumentId,
    operation: q.operation,
    status: q.status,
    ...period,
    limit: q.limit ?? Math.min(50, maxLimit),
    cursor: q.cursor,
  });
  if (page.rows.length === 0) await knownInstrument(ctx, ledger, instrumentId);
  res.json({ data: page.rows.map(recordedOperation), nextCursor: page.nextCursor });
}

/** The instrument's statement for this request's query, as JSON or CSV. Shared with the storefront. */
export async function sendStatement(ctx: ApiContext, req: Request, res: Response, instrumentId: string): Promise<void> {
  const ledger = requireLedger(ctx);
  const q = parseQuery(req.query, statementQuery);
  const period = periodOf(q.from, q.to);
  const known = await knownInstrument(ctx, ledger, instrumentId);
  const statement = await instrumentStatement(ledger, instrumentId, known.type, period.from, period.to);
  const scope = { instrumentId, customerId: known.customerId, currency: known.currency, ...period };
  if (wantsCsv(req, q.format)) {
    const name = `statement-${instrumentId}-${q.from ?? 'start'}-${q.to ?? 'now'}.csv`;
    sendCsv(res, name, statementCsvRows(statement, scope));
    return;
  }
  res.json(renderStatement(statement, scope));
}

export function ledgerRoutes(ctx: ApiContext): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/instruments/:instrumentId/transactions',
      operationId: 'listTransactions',
      summary: "The instrument's recorded operations, newest first",
      description:
        'Every money operation the record holds for the instrument (any age, until LEDGER_RETENTION_DAYS prunes it), ' +
        'newest first in keyset pages: pass nextCursor as `cursor` for the next page. Filters combine.',
      tag: 'record',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId },
      query: transactionsQuery,
      responses: { 200: { description: 'A page', schema: s.TransactionPage }, ...problems },
      handler: async (req, res) => {
        await sendTransactions(ctx, req, res, instrumentIdParam(req, res));
      },
    }),
    route({
      method: 'get',
      path: '/instruments/:instrumentId/purchases/:purchaseId',
      operationId: 'getPurchase',
      summary: 'Read one purchase by its id: its outcome, what was refunded of it, its refunds',
      description:
        'From the record, at any age: the operation result (approved, declined, or still pending) with refundedAmount and the refunds. ' +
        'How a client follows a purchase answered 202 to its outcome. A purchase the record does not hold (or an API without a record) ' +
        "is answered from the workflow's memory of recent operations, without refunds.",
      tag: 'operations',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId, purchaseId: s.OperationId },
      responses: {
        200: { description: 'The purchase', schema: s.PurchaseRecord },
        404: 'Unknown instrument, or no purchase with this id (unknown_purchase)',
        504: 'The workflow did not answer in time',
      },
      handler: async (req, res) => {
        const instrumentId = instrumentIdParam(req, res);
        const purchaseId = parseWith(s.OperationId, req.params.purchaseId, { field: 'purchaseId' });
        res.locals.purchaseId = purchaseId;
        const row = await ctx.ledger?.operation(instrumentId, 'purchase', purchaseId);
        if (row) {
          const refunds = await ctx.ledger!.refundsOf(instrumentId, purchaseId);
          // The instrument's state is the workflow's to tell; a closed or unreachable one says so.
          const state = await ctx.instruments.snapshot(instrumentId).then(
            (snapshot) => snapshot.state,
            () => 'unknown',
          );
          res.json({
            ...renderOperation(instrumentId, resultFromRecord(row, state)),
            description: row.description ?? undefined,
            refundedAmount: money(row.refunded_amount, row.currency),
            refunds: refunds.map(recordedOperation),
            createdAt: new Date(row.created_at).toISOString(),
            updatedAt: new Date(row.updated_at).toISOString(),
          });
          return;
        }
        const result = await ctx.instruments.operationResult(instrumentId, 'purchase', purchaseId);
        if (!result)
          throw new ProblemError(404, 'unknown_purchase', `instrument ${instrumentId} has no purchase ${purchaseId}`, {
            field: 'purchaseId',
          });
        res.json({ ...renderOperation(instrumentId, result), refundedAmount: money(0, result.currency), refunds: [] });
      },
    }),
    route({
      method: 'get',
      path: '/instruments/:instrumentId/statement',
      operationId: 'getInstrumentStatement',
      summary: "The instrument's statement for a period, as JSON or CSV",
      description:
        'Opening and closing balance (prepaid) or debt (postpaid), every recorded operation in the period with the running figure, ' +
        'and totals of what succeeded by operation. Only successful operations move money; the others are listed. ' +
        'Days are UTC; `to` is inclusive. `Accept: text/csv` (or format=csv) answers a CSV download.',
      tag: 'record',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId },
      query: statementQuery,
      responses: {
        200: { description: 'The statement', schema: s.StatementSchema, alternatives: asCsv, headers: csvHeaders },
        ...problems,
        400: 'A query parameter is invalid, or from is after to (invalid_parameter; `field` names it)',
      },
      handler: async (req, res) => {
        await sendStatement(ctx, req, res, instrumentIdParam(req, res));
      },
    }),
    route({
      method: 'get',
      path: '/customers/:customerId/statement',
      operationId: 'getCustomerStatement',
      summary: "A month's statement across the customer's instruments, as JSON or CSV",
      description:
        'One statement per instrument that has operations in the month or a non-zero opening figure, each with its own opening and closing. ' +
        'A customer with nothing recorded has an empty list. `Accept: text/csv` (or format=csv) answers one CSV with an instrument column.',
      tag: 'record',
      security: 'apiKey',
      params: { customerId: s.CustomerId },
      query: customerStatementQuery,
      responses: {
        200: {
          description: 'The statement',
          schema: s.CustomerStatementSchema,
          alternatives: asCsv,
          headers: csvHeaders,
        },
        400: problems[400],
        422: 'Invalid customer id',
        503: 'No record configured (ledger_unavailable)',
      },
      handler: async (req, res) => {
        const ledger = requireLedger(ctx);
        const customerId = parseWith(s.CustomerId, req.params.customerId, { field: 'customerId' });
        res.locals.customerId = customerId;
        const q = parseQuery(req.query, customerStatementQuery);
        const month = q.month!;
        const period = monthPeriod(month);
        const statements = await customerStatement(ledger, customerId, period.from, period.to);
        const scopeOf = (st: (typeof statements)[number]) => ({
          instrumentId: st.instrumentId,
          customerId,
          currency: st.currency!,
          ...period,
        });
        if (wantsCsv(req, q.format)) {
          sendCsv(
            res,
            `statement-${customerId}-${month}.csv`,
            statements.flatMap((st) => statementCsvRows(st, scopeOf(st))),
          );
          return;
        }
        res.json({
          customerId,
          month,
          from: new Date(period.from).toISOString().slice(0, 10),
          to: new Date(period.to - 1).toISOString().slice(0, 10),
          instruments: statements.map((st) => renderStatement(st, scopeOf(st))),
        });
      },
    }),
  ];
}
