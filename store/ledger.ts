// The record's queries: one operation row per CallerReference (upserted by every attempt), the
// verified callbacks, and the event outbox written in the same transaction as the row it reports.
// The workflow stays the source of truth for state and decisions; this is the durable record.
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { TransactionStatus } from '../fps/actions';
import type { LedgerDb } from './db';
import type { EventRow, LedgerDatabase, OperationRow, OperationsTable } from './schema';
import { beforeEventInsert, fanOutEvent } from './webhooks';

export type OperationWrite = Omit<OperationsTable, 'created_at' | 'updated_at' | 'refunded_amount' | 'counted_at'> & {
  refunded_amount?: number;
};

export interface EventWrite {
  type: string;
  instrumentId: string;
  customerId: string;
  eventKey: string;
  data: Record<string, unknown>;
}

/** The body merchants see (issue 13's shape). */
export interface LedgerEvent {
  id: string;
  type: string;
  createdAt: string;
  instrumentId: string;
  customerId: string;
  sequence: number;
  data: Record<string, unknown>;
}

/** Final for the record: a later call with the same CallerReference cannot change it. */
export const FINAL_RECORDED_STATUSES: readonly string[] = ['Success', 'Failure', 'Cancelled', 'Declined'];
export const isFinalRecordedStatus = (status: string): boolean => FINAL_RECORDED_STATUSES.includes(status);

export interface TransactionQuery {
  instrumentId?: string;
  customerId?: string;
  operation?: string;
  status?: string;
  /** Inclusive, epoch ms. */
  from?: number;
  /** Exclusive, epoch ms. */
  to?: number;
  limit: number;
  /** From the previous page's nextCursor. */
  cursor?: string;
}

/** Opaque page cursor: the last row's (created_at, caller_reference). */
export function encodeCursor(row: Pick<OperationRow, 'created_at' | 'caller_reference'>): string {
  return Buffer.from(JSON.stringify([row.created_at, row.caller_reference])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: number; callerReference: string } | undefined {
  try {
    const [createdAt, callerReference] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    // A non-integer time would reach the query as a BIGINT parameter PostgreSQL refuses.
    if (!Number.isSafeInteger(createdAt) || typeof callerReference !== 'string') return undefined;
    return { createdAt: createdAt as number, callerReference };
  } catch {
    return undefined;
  }
}

export class LedgerStore {
  readonly db: Kysely<LedgerDatabase>;
  constructor(
    readonly ledger: LedgerDb,
    private readonly now: () => number = Date.now,
  ) {
    this.db = ledger.db;
  }

  close(): Promise<void> {
    return this.ledger.close();
  }

  operationByCallerReference(callerReference: string): Promise<OperationRow | undefined> {
    return this.db
      .selectFrom('operations')
      .selectAll()
      .where('caller_reference', '=', callerReference)
      .executeTakeFirst();
  }

  operation(instrumentId: string, operation: string, operationId: string): Promise<OperationRow | undefined> {
    return this.db
      .selectFrom('operations')
      .selectAll()
      .where('instrument_id', '=', instrumentId)
      .where('operation', '=', operation)
      .where('operation_id', '=', operationId)
      .executeTakeFirst();
  }

  /**
   * The workflow's acknowledgement that its durable state counts these operations of one instrument
   * (see migration 004): sets counted_at where it is still null. Returns how many rows it marked.
   */
  async markCounted(
    instrumentId: string,
    operations: ReadonlyArray<{ operation: string; operationId: string }>,
  ): Promise<number> {
    if (operations.length === 0) return 0;
    const at = this.now();
    const byKind = new Map<string, string[]>();
    for (const { operation, operationId } of operations)
      byKind.set(operation, [...(byKind.get(operation) ?? []), operationId]);
    let marked = 0;
    for (const [operation, ids] of byKind) {
      const result = await this.db
        .updateTable('operations')
        .set({ counted_at: at })
        .where('instrument_id', '=', instrumentId)
        .where('operation', '=', operation)
        .where('operation_id', 'in', ids)
        .where('counted_at', 'is', null)
        .executeTakeFirst();
      marked += Number(result.numUpdatedRows);
    }
    return marked;
  }

  /** The refunds recorded against a purchase (or capture), oldest first. */
  refundsOf(instrumentId: string, parentOperationId: string): Promise<OperationRow[]> {
    return this.db
      .selectFrom('operations')
      .selectAll()
      .where('instrument_id', '=', instrumentId)
      .where('operation', '=', 'refund')
      .where('parent_operation_id', '=', parentOperationId)
      .orderBy('created_at')
      .orderBy('caller_reference')
      .execute();
  }

  /** Who an instrument belongs to and what it is, from its oldest row; undefined when nothing is recorded. */
  instrumentFacts(
    instrumentId: string,
  ): Promise<Pick<OperationRow, 'instrument_id' | 'customer_id' | 'instrument_type' | 'currency'> | undefined> {
    return this.db
      .selectFrom('operations')
      .select(['instrument_id', 'customer_id', 'instrument_type', 'currency'])
      .where('instrument_id', '=', instrumentId)
      .orderBy('created_at')
      .limit(1)
      .executeTakeFirst();
  }

  /** The instruments a customer has rows for before `before` (epoch ms), with their type and currency. */
  instrumentsOfCustomer(
    customerId: string,
    before?: number,
  ): Promise<Array<Pick<OperationRow, 'instrument_id' | 'instrument_type' | 'currency'>>> {
    let query = this.db
      .selectFrom('operations')
      .select(['instrument_id', 'instrument_type', 'currency'])
      .where('customer_id', '=', customerId);
    if (before !== undefined) query = query.where('created_at', '<', before);
    return query.groupBy(['instrument_id', 'instrument_type', 'currency']).orderBy('instrument_id').execute();
  }

  /**
   * Upserts the operation's row by CallerReference and appends its events, in one transaction.
   * A final row never changes status again (a late or replayed answer cannot move it backwards).
   * Refunds that succeed add to their purchase's refunded_amount, once (on the row's transition to Success).
   */
  async recordOperation(row: OperationWrite, events: EventWrite[] = []): Promise<OperationRow> {
    const at = this.now();
    return this.writeTransaction(async (trx) => {
      // The first write inserts the row; a later one locks it first, so concurrent writes of one
      // CallerReference take turns and each sees the one before it (PostgreSQL's READ COMMITTED
      // would otherwise let two of them both find "not yet Success" and both add a refund).
      const inserted = await trx
        .insertInto('operations')
        .values({ ...row, refunded_amount: row.refunded_amount ?? 0, created_at: at, updated_at: at })
        .onConflict((oc) => oc.doNothing()) // any unique key: concurrent inserts of one operation wait, then find it
        .returningAll()
        .executeTakeFirst();
      const before = inserted ? undefined : await this.lockedOperation(trx, row.caller_reference);
      if (before && isFinalRecordedStatus(before.status)) return before;
      if (before) {
        await trx
          .updateTable('operations')
          .set({
            status: row.status,
            transaction_id: row.transaction_id ?? before.transaction_id,
            decline_code: row.decline_code,
            decline_reason: row.decline_reason,
            updated_at: at,
          })
          .where('caller_reference', '=', row.caller_reference)
          .execute();
      }
      const becameSuccess = row.status === 'Success' && before?.status !== 'Success';
      if (becameSuccess && row.operation === 'refund' && row.parent_operation_id) {
        await trx
          .updateTable('operations')
          .set((eb) => ({ refunded_amount: eb('refunded_amount', '+', row.amount), updated_at: at }))
          .where('instrument_id', '=', row.instrument_id)
          .where('operation', 'in', ['purchase', 'capture'])
          .where('operation_id', '=', row.parent_operation_id)
          .execute();
      }
      if (before?.status !== row.status) for (const event of events) await appendEvent(trx, event, at);
      // A new row is as inserted (what follows changes other rows only): no second read of it.
      if (inserted) return inserted;
      return (await trx
        .selectFrom('operations')
        .selectAll()
        .where('caller_reference', '=', row.caller_reference)
        .executeTakeFirst())!;
    });
  }

  /**
   * A transaction that writes. On SQLite it begins IMMEDIATE: the file's write lock is taken first
   * (waiting up to busy_timeout while the other process — API or worker — writes), so a read inside
   * never holds a snapshot that a later write would have to upgrade: that upgrade fails at once with
   * SQLITE_BUSY ("database is locked"), busy timeout or not. On PostgreSQL an ordinary transaction:
   * its queries lock the rows they change.
   */
  private writeTransaction<T>(fn: (trx: Transaction<LedgerDatabase>) => Promise<T>): Promise<T> {
    if (this.ledger.dialect !== 'sqlite') return this.db.transaction().execute(fn);
    // Kysely's SQLite driver begins DEFERRED; its single connection is ours for the callback, so
    // the transaction is spelled out on it (the queries only need a Kysely; nothing here nests).
    return this.db.connection().execute(async (connection) => {
      await sql`begin immediate`.execute(connection);
      try {
        const result = await fn(connection as Transaction<LedgerDatabase>);
        await sql`commit`.execute(connection);
        return result;
      } catch (err) {
        await sql`rollback`.execute(connection).catch(() => undefined);
        throw err;
      }
    });
  }

  /** The row, locked until the transaction ends (SQLite: its transactions are serial already). */
  private async lockedOperation(trx: Transaction<LedgerDatabase>, callerReference: string): Promise<OperationRow> {
    return trx
      .selectFrom('operations')
      .selectAll()
      .where('caller_reference', '=', callerReference)
      .$if(this.ledger.dialect === 'postgres', (q) => q.forUpdate())
      .executeTakeFirstOrThrow();
  }

  /** A later outcome (IPN or poll) of a recorded operation: Pending → Success/Failure. */
  async resolveOperation(
    callerReference: string,
    status: TransactionStatus | 'Declined',
    events: (row: OperationRow) => EventWrite[] = () => [],
    decline?: { code?: string; reason?: string },
  ): Promise<OperationRow | undefined> {
    const before = await this.operationByCallerReference(callerReference);
    if (!before) return undefined;
    const { created_at: _c, updated_at: _u, ...write } = before;
    return this.recordOperation(
      {
        ...write,
        status,
        decline_code: decline?.code ?? before.decline_code,
        decline_reason: decline?.reason ?? before.decline_reason,
      },
      events({ ...before, status }),
    );
  }

  /** Appends an event unless this instrument already has one with the same key. */
  async appendEvent(event: EventWrite): Promise<void> {
    await this.writeTransaction((trx) => appendEvent(trx, event, this.now()));
  }

  async recordCallback(callback: {
    kind: 'ipn' | 'return';
    instrumentId?: string;
    callerReference?: string;
    transactionId?: string;
    status?: string;
    parameters: Record<string, string>;
  }): Promise<void> {
    const {
      signature: _s,
      signatureVersion: _v,
      signatureMethod: _m,
      certificateUrl: _u,
      ...kept
    } = callback.parameters;
    await this.db
      .insertInto('callbacks')
      .values({
        kind: callback.kind,
        instrument_id: callback.instrumentId ?? null,
        caller_reference: callback.callerReference ?? null,
        transaction_id: callback.transactionId ?? null,
        status: callback.status ?? null,
        parameters: JSON.stringify(kept),
        received_at: this.now(),
      })
      .execute();
  }

  callbacksFor(callerReference: string) {
    return this.db
      .selectFrom('callbacks')
      .selectAll()
      .where('caller_reference', '=', callerReference)
      .orderBy('id')
      .execute();
  }

  /** Newest first, keyset-paged. */
  async transactions(q: TransactionQuery): Promise<{ rows: OperationRow[]; nextCursor: string | null }> {
    let query = this.db.selectFrom('operations').selectAll();
    if (q.instrumentId) query = query.where('instrument_id', '=', q.instrumentId);
    if (q.customerId) query = query.where('customer_id', '=', q.customerId);
    if (q.operation) query = query.where('operation', '=', q.operation);
    if (q.status) query = query.where('status', '=', q.status);
    if (q.from !== undefined) query = query.where('created_at', '>=', q.from);
    if (q.to !== undefined) query = query.where('created_at', '<', q.to);
    const after = q.cursor ? decodeCursor(q.cursor) : undefined;
    if (after)
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '<', after.createdAt),
          eb.and([eb('created_at', '=', after.createdAt), eb('caller_reference', '<', after.callerReference)]),
        ]),
      );
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('caller_reference', 'desc')
      .limit(q.limit + 1)
      .execute();
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    return { rows: page, nextCursor: more ? encodeCursor(page[page.length - 1]) : null };
  }

  /** Every operation of a scope in [from, to), oldest first, for statements. */
  operationsBetween(scope: { instrumentId?: string; customerId?: string }, from?: number, to?: number) {
    let query = this.db.selectFrom('operations').selectAll();
    if (scope.instrumentId) query = query.where('instrument_id', '=', scope.instrumentId);
    if (scope.customerId) query = query.where('customer_id', '=', scope.customerId);
    if (from !== undefined) query = query.where('created_at', '>=', from);
    if (to !== undefined) query = query.where('created_at', '<', to);
    return query.orderBy('created_at').orderBy('caller_reference').execute();
  }

  /** Events after a cursor (the outbox's seq), oldest first. */
  async events(q: { after?: number; type?: string; instrumentId?: string; limit: number }): Promise<EventRow[]> {
    let query = this.db.selectFrom('events').selectAll();
    if (q.after !== undefined) query = query.where('seq', '>', q.after);
    if (q.type) query = query.where('type', '=', q.type);
    if (q.instrumentId) query = query.where('instrument_id', '=', q.instrumentId);
    return query.orderBy('seq').limit(q.limit).execute();
  }

  /**
   * LEDGER_RETENTION_DAYS: deletes what is older than `days` and finished. Operations only when
   * final (a Pending or Reserved one still has an outcome to record, and its retry must still be
   * recognised); callbacks unless their operation is still recorded (kept with it for audit); events unless a delivery of
   * theirs is still pending (never delivered yet, or failing and retried), since the deliverer
   * needs the event to send it. WebhookStore.prune then removes the finished deliveries.
   * The per-instrument event counters stay, so a pruned instrument's next event does not reuse a
   * sequence. Answers how many operations were deleted.
   */
  async prune(days: number): Promise<number> {
    const before = this.now() - days * 86_400_000;
    const r = await this.db
      .deleteFrom('operations')
      .where('updated_at', '<', before)
      .where('status', 'in', FINAL_RECORDED_STATUSES)
      .executeTakeFirst();
    await this.db
      .deleteFrom('callbacks')
      .where('received_at', '<', before)
      .where((eb) =>
        eb.or([
          eb('caller_reference', 'is', null),
          eb.not(
            eb.exists(
              eb
                .selectFrom('operations')
                .select('operations.caller_reference')
                .whereRef('operations.caller_reference', '=', 'callbacks.caller_reference'),
            ),
          ),
        ]),
      )
      .execute();
    await this.db
      .deleteFrom('events')
      .where('created_at', '<', before)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('deliveries')
              .select('deliveries.id')
              .whereRef('deliveries.event_seq', '=', 'events.seq')
              .where('deliveries.status', '=', 'pending'),
          ),
        ),
      )
      .execute();
    return Number(r.numDeletedRows);
  }
}

/**
 * Inside a transaction: the instrument's next sequence, once per event key. The instrument's
 * counter row is taken first (locked until the transaction ends), so concurrent appenders take
 * turns, the key check sees every committed event, and no two events get the same number. The
 * event's webhook deliveries are created with it.
 */
async function appendEvent(trx: Transaction<LedgerDatabase>, event: EventWrite, at: number): Promise<void> {
  const { last_sequence: last } = await trx
    .insertInto('event_sequences')
    .values({ instrument_id: event.instrumentId, last_sequence: 0 })
    // A no-op update: it locks the existing row and answers its latest committed value.
    .onConflict((oc) =>
      oc.column('instrument_id').doUpdateSet((eb) => ({ last_sequence: eb.ref('event_sequences.last_sequence') })),
    )
    .returning('last_sequence')
    .executeTakeFirstOrThrow();
  const seen = await trx
    .selectFrom('events')
    .select('seq')
    .where('instrument_id', '=', event.instrumentId)
    .where('event_key', '=', event.eventKey)
    .executeTakeFirst();
  if (seen) return;
  const sequence = last + 1;
  await beforeEventInsert(trx);
  const inserted = await trx
    .insertInto('events')
    .values({
      id: `evt_${randomUUID().replace(/-/g, '')}`,
      type: event.type,
      instrument_id: event.instrumentId,
      customer_id: event.customerId,
      sequence,
      event_key: event.eventKey,
      created_at: at,
      data: JSON.stringify(event.data),
    })
    .returning(['seq', 'id', 'type', 'created_at'])
    .executeTakeFirstOrThrow();
  await trx
    .updateTable('event_sequences')
    .set({ last_sequence: sequence })
    .where('instrument_id', '=', event.instrumentId)
    .execute();
  // Deliveries are created with the event, in its transaction: no endpoint misses it, none gets it twice.
  await fanOutEvent(trx, inserted);
}

export function renderEvent(row: EventRow): LedgerEvent {
  return {
    id: row.id,
    type: row.type,
    createdAt: new Date(row.created_at).toISOString(),
    instrumentId: row.instrument_id,
    customerId: row.customer_id,
    sequence: row.sequence,
    data: JSON.parse(row.data) as Record<string, unknown>,
  };
}
