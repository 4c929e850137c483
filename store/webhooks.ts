// Webhook queries: endpoints, the deliveries created with each event (fan-out in the event's own
// transaction), the deliverer's claim with a lease, attempts, and the event log's read barrier.
import { createHash, randomBytes } from 'node:crypto';
import { PostgresAdapter, sql, type Kysely, type Transaction } from 'kysely';
import type { LedgerDb } from './db';
import { TEST_EVENT_TYPE } from './event-types';
import type {
  DeliveryAttemptRow,
  DeliveryRow,
  DeliveryStatus,
  EventRow,
  LedgerDatabase,
  WebhookEndpointRow,
} from './schema';

/** Subscribes to every event type (never to webhook.test, which goes only where it is sent). */
export const ALL_EVENTS = '*';

/**
 * The advisory lock that orders event writes against event-log reads on PostgreSQL: writers hold
 * it shared (they never wait for each other), a log read takes it exclusively for a moment. See
 * eventLogWatermark().
 */
const EVENT_WRITE_LOCK = 0x46505345; // 'FPSE'

export function isPostgres(db: Kysely<LedgerDatabase>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Called inside an event-writing transaction before the event takes its `seq`. On PostgreSQL a
 * sequence value is taken at insert but becomes visible at commit, so a reader could see seq 11
 * before seq 10 commits and page past it; the shared lock lets a reader wait for writers in flight.
 * SQLite has one writer at a time: seq order is commit order already.
 */
export async function beforeEventInsert(trx: Transaction<LedgerDatabase>): Promise<void> {
  if (isPostgres(trx)) await sql`select pg_advisory_xact_lock_shared(${EVENT_WRITE_LOCK})`.execute(trx);
}

/**
 * Inside the event's transaction: one pending delivery per live endpoint subscribed to its type,
 * due at once. One INSERT … SELECT over the (small) endpoints table.
 */
export async function fanOutEvent(
  trx: Transaction<LedgerDatabase>,
  event: Pick<EventRow, 'seq' | 'id' | 'type' | 'created_at'>,
): Promise<void> {
  const pattern = `%${JSON.stringify(event.type).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  await trx
    .insertInto('deliveries')
    .columns(['event_seq', 'event_id', 'endpoint_id', 'status', 'attempts', 'created_at', 'next_attempt_at'])
    .expression((eb) =>
      eb
        .selectFrom('webhook_endpoints')
        .select((s) => [
          s.cast<number>(s.val(event.seq), 'bigint').as('event_seq'),
          s.cast<string>(s.val(event.id), 'text').as('event_id'),
          'id',
          s.cast<DeliveryStatus>(s.val('pending'), 'text').as('status'),
          s.cast<number>(s.val(0), 'integer').as('attempts'),
          s.cast<number>(s.val(event.created_at), 'bigint').as('created_at'),
          s.cast<number>(s.val(event.created_at), 'bigint').as('next_attempt_at'),
        ])
        .where('deleted_at', 'is', null)
        .where('disabled_at', 'is', null)
        .where((w) =>
          w.or([
            w('events', '=', JSON.stringify([ALL_EVENTS])),
            sql<boolean>`${sql.ref('events')} like ${pattern} escape '\\'`,
          ]),
        ),
    )
    .execute();
}

export interface EndpointCreate {
  url: string;
  events: string[];
  description?: string;
  idempotencyKey?: string;
}

export class IdempotencyConflict extends Error {
  override readonly name = 'IdempotencyConflict';
}

/** A claimed delivery with what sending it needs. */
export interface ClaimedDelivery {
  delivery: DeliveryRow;
  event: EventRow;
  endpoint: WebhookEndpointRow;
}

export interface AttemptResult {
  at: number;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** What the delivery becomes: delivered, pending again (at nextAttemptAt) or failed. */
  status: DeliveryStatus;
  nextAttemptAt?: number;
}

export interface EventLogQuery {
  after?: number;
  type?: string;
  instrumentId?: string;
  limit: number;
}

export class WebhookStore {
  readonly db: Kysely<LedgerDatabase>;
  constructor(
    readonly ledger: LedgerDb,
    private readonly now: () => number = Date.now,
  ) {
    this.db = ledger.db;
  }

  // ---- endpoints -------------------------------------------------------------------------------

  /** Creates an endpoint, or answers the one an earlier request with the same Idempotency-Key created. */
  async createEndpoint(input: EndpointCreate): Promise<{ endpoint: WebhookEndpointRow; created: boolean }> {
    const requestHash = createHash('sha256')
      .update(JSON.stringify([input.url, input.events, input.description ?? null]))
      .digest('hex');
    const row: WebhookEndpointRow = {
      id: `we_${randomBytes(10).toString('hex')}`,
      url: input.url,
      events: JSON.stringify(input.events),
      description: input.description ?? null,
      secret: `whsec_${randomBytes(24).toString('base64url')}`,
      idempotency_key: input.idempotencyKey ?? null,
      request_hash: requestHash,
      created_at: this.now(),
      last_success_at: null,
      disabled_at: null,
      disabled_reason: null,
      deleted_at: null,
    };
    if (input.idempotencyKey === undefined) {
      await this.db.insertInto('webhook_endpoints').values(row).execute();
      return { endpoint: row, created: true };
    }
    await this.db
      .insertInto('webhook_endpoints')
      .values(row)
      .onConflict((oc) => oc.column('idempotency_key').doNothing())
      .execute();
    const stored = (await this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('idempotency_key', '=', input.idempotencyKey)
      .executeTakeFirst())!;
    if (stored.request_hash !== requestHash)
      throw new IdempotencyConflict('this Idempotency-Key created an endpoint with a different request');
    return { endpoint: stored, created: stored.id === row.id };
  }

  /** A live or disabled endpoint; deleted ones are gone. */
  endpoint(id: string): Promise<WebhookEndpointRow | undefined> {
    return this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  endpoints(): Promise<WebhookEndpointRow[]> {
    return this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** Marks it deleted; its pending deliveries fail (nothing more is sent to it). */
  async deleteEndpoint(id: string): Promise<WebhookEndpointRow | undefined> {
    const at = this.now();
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('webhook_endpoints')
        .set({ deleted_at: at })
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return undefined;
      await failPending(trx, id, 'endpoint deleted', at);
      return trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
    });
  }

  /** An endpoint that failed for the whole retry window stops receiving; its pending deliveries fail. */
  async disableEndpoint(id: string, reason: string): Promise<void> {
    const at = this.now();
    await this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('webhook_endpoints')
        .set({ disabled_at: at, disabled_reason: reason })
        .where('id', '=', id)
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) > 0) await failPending(trx, id, 'endpoint disabled', at);
    });
  }

  /** Counts of an endpoint's deliveries by status. */
  async deliveryCounts(endpointId: string): Promise<Record<DeliveryStatus, number>> {
    const rows = await this.db
      .selectFrom('deliveries')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .where('endpoint_id', '=', endpointId)
      .groupBy('status')
      .execute();
    const counts: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, failed: 0 };
    for (const r of rows) counts[r.status] = Number(r.n);
    return counts;
  }

  /**
   * A webhook.test event for one endpoint, with its delivery, in one transaction. The same key
   * (the request's Idempotency-Key) answers the same event. Its instrument_id is the endpoint's id
   * (the events table wants one; the wire body shows null).
   */
  async queueTestEvent(endpointId: string, key: string): Promise<EventRow> {
    const at = this.now();
    return this.db.transaction().execute(async (trx) => {
      const eventKey = `test:${key}`;
      // The endpoint's counter row first (a write: it locks, and SQLite waits for other writers).
      const { last_sequence: last } = await trx
        .insertInto('event_sequences')
        .values({ instrument_id: endpointId, last_sequence: 0 })
        .onConflict((oc) =>
          oc.column('instrument_id').doUpdateSet((eb) => ({ last_sequence: eb.ref('event_sequences.last_sequence') })),
        )
        .returning('last_sequence')
        .executeTakeFirstOrThrow();
      const seen = await trx
        .selectFrom('events')
        .selectAll()
        .where('instrument_id', '=', endpointId)
        .where('event_key', '=', eventKey)
        .executeTakeFirst();
      if (seen) return seen;
      await beforeEventInsert(trx);
      const event = await trx
        .insertInto('events')
        .values({
          id: `evt_${randomBytes(16).toString('hex')}`,
          type: TEST_EVENT_TYPE,
          instrument_id: endpointId,
          customer_id: '',
          sequence: last + 1,
          event_key: eventKey,
          created_at: at,
          data: JSON.stringify({
            endpointId,
            message: 'A test event: your endpoint is reachable and verifies signatures.',
          }),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await trx
        .updateTable('event_sequences')
        .set({ last_sequence: event.sequence })
        .where('instrument_id', '=', endpointId)
        .execute();
      await trx
        .insertInto('deliveries')
        .values({
          event_seq: event.seq,
          event_id: event.id,
          endpoint_id: endpointId,
          status: 'pending',
          attempts: 0,
          created_at: at,
          next_attempt_at: at,
        })
        .execute();
      return event;
    });
  }

  // ---- the deliverer ---------------------------------------------------------------------------

  /** Whether anything is due: a plain read, so an idle deliverer never takes SQLite's write lock. */
  async anyDue(): Promise<boolean> {
    const now = this.now();
    const row = await this.db
      .selectFrom('deliveries')
      .select('id')
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Claims up to `limit` due deliveries for `leaseMs` under `token`, in one statement: on PostgreSQL
   * the candidate rows are locked `FOR UPDATE SKIP LOCKED`, so two deliverers claiming at once take
   * different rows; on SQLite the statement runs in the single write transaction. A claim whose
   * lease ran out (its deliverer died) is due again.
   */
  async claim(limit: number, leaseMs: number, token: string): Promise<ClaimedDelivery[]> {
    const now = this.now();
    const postgres = isPostgres(this.db);
    const deliveries = await this.db.transaction().execute(async (trx) => {
      let candidates = trx
        .selectFrom('deliveries')
        .select('id')
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .orderBy('next_attempt_at')
        .limit(limit);
      if (postgres) candidates = candidates.forUpdate().skipLocked();
      return trx
        .updateTable('deliveries')
        .set({ locked_until: now + leaseMs, locked_by: token })
        .where('id', 'in', candidates)
        .returningAll()
        .execute();
    });
    if (deliveries.length === 0) return [];
    const [events, endpoints] = await Promise.all([
      this.db
        .selectFrom('events')
        .selectAll()
        .where(
          'seq',
          'in',
          deliveries.map((d) => d.event_seq),
        )
        .execute(),
      this.db
        .selectFrom('webhook_endpoints')
        .selectAll()
        .where('id', 'in', [...new Set(deliveries.map((d) => d.endpoint_id))])
        .execute(),
    ]);
    const eventBySeq = new Map(events.map((e) => [e.seq, e]));
    const endpointById = new Map(endpoints.map((e) => [e.id, e]));
    const claimed: ClaimedDelivery[] = [];
    for (const delivery of deliveries) {
      const event = eventBySeq.get(delivery.event_seq);
      const endpoint = endpointById.get(delivery.endpoint_id);
      if (event && endpoint) claimed.push({ delivery, event, endpoint });
      else
        // The event was pruned or the endpoint removed under it: nothing left to send.
        await this.finishAttemptless(delivery.id, token, 'event or endpoint no longer exists');
    }
    return claimed;
  }

  /** Ends a claimed delivery without sending (its endpoint was deleted or disabled meanwhile). */
  async finishAttemptless(deliveryId: number, token: string, reason: string): Promise<void> {
    await this.db
      .updateTable('deliveries')
      .set({ status: 'failed', last_error: reason, locked_until: null, locked_by: null })
      .where('id', '=', deliveryId)
      .where('locked_by', '=', token)
      .execute();
  }

  /**
   * Records an attempt and the delivery's next state, in one transaction. The attempt is kept even
   * if the lease was lost meanwhile (it was sent); the delivery row only moves for its holder.
   */
  async recordAttempt(claimed: ClaimedDelivery, token: string, result: AttemptResult): Promise<void> {
    const { delivery } = claimed;
    // Writes first: a SQLite transaction that reads before it writes cannot wait for another
    // process's write (SQLITE_BUSY_SNAPSHOT); one that starts with a write waits (busy_timeout).
    await this.db.transaction().execute(async (trx) => {
      const moved = await trx
        .updateTable('deliveries')
        .set((eb) => ({
          status: result.status,
          attempts: eb('attempts', '+', 1),
          last_attempt_at: result.at,
          last_status_code: result.statusCode,
          last_error: result.error,
          next_attempt_at: result.nextAttemptAt ?? delivery.next_attempt_at,
          delivered_at: result.status === 'delivered' ? result.at + result.durationMs : null,
          locked_until: null,
          locked_by: null,
        }))
        .where('id', '=', delivery.id)
        .where('locked_by', '=', token)
        .returning('attempts')
        .executeTakeFirst();
      const attempt =
        moved?.attempts ??
        // The lease was lost meanwhile: the attempt still happened, so it is kept; the row is not moved.
        ((await trx.selectFrom('deliveries').select('attempts').where('id', '=', delivery.id).executeTakeFirst())
          ?.attempts ?? delivery.attempts) + 1;
      await trx
        .insertInto('delivery_attempts')
        .values({
          delivery_id: delivery.id,
          event_id: delivery.event_id,
          endpoint_id: delivery.endpoint_id,
          attempt,
          at: result.at,
          status_code: result.statusCode,
          error: result.error,
          duration_ms: result.durationMs,
        })
        .execute();
      if (moved && result.status === 'delivered')
        await trx
          .updateTable('webhook_endpoints')
          .set({ last_success_at: result.at })
          .where('id', '=', delivery.endpoint_id)
          .execute();
    });
  }

  // ---- the event log ---------------------------------------------------------------------------

  /**
   * The highest `seq` below which every event is committed. On PostgreSQL: wait (exclusive lock)
   * for the event writers in flight, then read max(seq); a later writer takes a higher seq.
   */
  async eventLogWatermark(): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      if (isPostgres(trx)) await sql`select pg_advisory_xact_lock(${EVENT_WRITE_LOCK})`.execute(trx);
      const row = await trx
        .selectFrom('events')
        .select((eb) => eb.fn.max('seq').as('max'))
        .executeTakeFirst();
      return Number(row?.max ?? 0);
    });
  }

  /** Events after a cursor, oldest first, never past the watermark. webhook.test only when asked for. */
  async eventLog(q: EventLogQuery): Promise<{ rows: EventRow[]; hasMore: boolean }> {
    const watermark = await this.eventLogWatermark();
    let query = this.db.selectFrom('events').selectAll().where('seq', '<=', watermark);
    if (q.after !== undefined) query = query.where('seq', '>', q.after);
    query = q.type ? query.where('type', '=', q.type) : query.where('type', '!=', TEST_EVENT_TYPE);
    if (q.instrumentId) query = query.where('instrument_id', '=', q.instrumentId);
    const rows = await query
      .orderBy('seq')
      .limit(q.limit + 1)
      .execute();
    return { rows: rows.slice(0, q.limit), hasMore: rows.length > q.limit };
  }

  eventById(id: string): Promise<EventRow | undefined> {
    return this.db.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** An event's deliveries, each with its attempts (oldest first). */
  async deliveriesOf(eventId: string): Promise<Array<DeliveryRow & { attemptRows: DeliveryAttemptRow[] }>> {
    const [deliveries, attempts] = await Promise.all([
      this.db.selectFrom('deliveries').selectAll().where('event_id', '=', eventId).orderBy('id').execute(),
      this.db
        .selectFrom('delivery_attempts')
        .selectAll()
        .where('event_id', '=', eventId)
        .orderBy('delivery_id')
        .orderBy('attempt')
        .execute(),
    ]);
    return deliveries.map((d) => ({ ...d, attemptRows: attempts.filter((a) => a.delivery_id === d.id) }));
  }

  /**
   * With LEDGER_RETENTION_DAYS: deletes deliveries that finished (delivered or failed) more than
   * `days` ago — their last attempt, or their creation if they had none — and then the attempts
   * older than that whose delivery is gone. A delivery still pending keeps every attempt, however
   * old (its history until it ends), and a finished one keeps them as long as it is kept itself.
   */
  async prune(days: number): Promise<void> {
    const before = this.now() - days * 86_400_000;
    await this.db
      .deleteFrom('deliveries')
      .where('status', '!=', 'pending')
      .where((eb) => eb(eb.fn.coalesce('last_attempt_at', 'created_at'), '<', before))
      .execute();
    await this.db
      .deleteFrom('delivery_attempts')
      .where('at', '<', before)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('deliveries')
              .select('deliveries.id')
              .whereRef('deliveries.id', '=', 'delivery_attempts.delivery_id'),
          ),
        ),
      )
      .execute();
  }
}

async function failPending(trx: Transaction<LedgerDatabase>, endpointId: string, reason: string, at: number) {
  await trx
    .updateTable('deliveries')
    .set({ status: 'failed', last_error: reason, next_attempt_at: at, locked_until: null, locked_by: null })
    .where('endpoint_id', '=', endpointId)
    .where('status', '=', 'pending')
    .execute();
}
