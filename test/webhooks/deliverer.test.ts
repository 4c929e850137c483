// The deliverer and its store against real databases (a SQLite file; a throwaway PostgreSQL 15)
// and a real HTTP receiver: fan-out with the event, each event sent once by two competing
// deliverers, retries with backoff, the window's end (failed, endpoint disabled), a dead
// deliverer's lease, a graceful stop, and an event log that never pages past a write in flight.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { sql } from 'kysely';
import { openLedgerDb, type LedgerDb } from '../../store/db';
import { LedgerStore } from '../../store/ledger';
import { beforeEventInsert, fanOutEvent, WebhookStore } from '../../store/webhooks';
import { WebhookDeliverer, type DelivererSettings } from '../../webhooks/deliverer';
import { verify } from '../../webhooks/signature';
import { postgresAvailable, startPostgres, type PostgresCluster } from '../../scripts/lib/postgres';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver';

const quiet = pino({ level: 'silent' });

const settings = (over: Partial<DelivererSettings> = {}): DelivererSettings => ({
  deliver: true,
  retryInitialMs: 100,
  retryMaxMs: 1_000,
  retryWindowMs: 60_000,
  timeoutMs: 2_000,
  pollMs: 20,
  concurrency: 16,
  allowPrivateUrls: true,
  ...over,
});

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let instrumentCounter = 0;
const event = (type: string, instrumentId = `ins_t${++instrumentCounter}`, key = type) => ({
  type,
  instrumentId,
  customerId: 'cust-webhooks',
  eventKey: key,
  data: { note: `${type} for ${instrumentId}` },
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`webhook deliverer on ${dialect}`, function () {
    this.timeout(60_000);
    let cluster: PostgresCluster | undefined;
    let dbCount = 0;
    const opened: LedgerDb[] = [];
    const deliverers: WebhookDeliverer[] = [];
    const receivers: WebhookReceiver[] = [];

    before(async function () {
      if (dialect === 'postgres') {
        if (!postgresAvailable()) this.skip();
        cluster = await startPostgres();
      }
    });
    after(async () => {
      // A pool's end() resolves before its sockets are gone; a server shutting down under a client
      // still ending raises an uncaught error, so wait for the backends to leave first.
      if (cluster) await untilNoClients(cluster);
      await cluster?.stop();
    });
    afterEach(async () => {
      await Promise.all(deliverers.splice(0).map((d) => d.stop()));
      await Promise.all(receivers.splice(0).map((r) => r.stop()));
      await Promise.all(opened.splice(0).map((db) => db.close()));
    });

    /** A fresh database; `connections` LedgerDbs on it (separate pools, as separate processes have). */
    async function freshDb(connections = 1): Promise<LedgerDb[]> {
      let url: string;
      if (cluster) url = await cluster.createDatabase(`webhooks_${++dbCount}`);
      else url = `sqlite:${path.join(mkdtempSync(path.join(os.tmpdir(), 'webhooks-')), 'ledger.sqlite')}`;
      const dbs: LedgerDb[] = [];
      for (let i = 0; i < connections; i++) dbs.push(await openLedgerDb(url));
      opened.push(...dbs);
      return dbs;
    }

    async function receiver(): Promise<WebhookReceiver> {
      const r = await startWebhookReceiver();
      receivers.push(r);
      return r;
    }

    function deliverer(db: LedgerDb, over: Partial<DelivererSettings> = {}): WebhookDeliverer {
      const d = new WebhookDeliverer(new WebhookStore(db), settings(over), quiet);
      deliverers.push(d);
      return d;
    }

    it('creates deliveries with the event, for the live endpoints subscribed to its type only', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const make = async (events: string[]) =>
        (await hooks.createEndpoint({ url: 'http://127.0.0.1:9/x', events })).endpoint.id;
      const all = await make(['*']);
      const approved = await make(['purchase.approved', 'refund.succeeded']);
      const writtenOff = await make(['debt.written_off']);
      const lookalike = await make(['purchase.approve']);
      const deleted = await make(['*']);
      await hooks.deleteEndpoint(deleted);
      const disabled = await make(['*']);
      await hooks.disableEndpoint(disabled, 'test');

      await ledger.appendEvent(event('purchase.approved', 'ins_a'));
      await ledger.appendEvent(event('debt.written_off', 'ins_a'));
      await ledger.appendEvent(event('purchase.declined', 'ins_a'));
      await ledger.appendEvent(event('purchase.declined', 'ins_a')); // same key: no second event
      const late = await make(['*']);

      const rows = await db.db
        .selectFrom('deliveries')
        .innerJoin('events', 'events.seq', 'deliveries.event_seq')
        .select(['events.type', 'deliveries.endpoint_id', 'deliveries.status', 'deliveries.attempts'])
        .orderBy('events.seq')
        .orderBy('deliveries.endpoint_id')
        .execute();
      const got = rows.map((r) => `${r.type}→${r.endpoint_id}`).sort();
      const want = [
        `purchase.approved→${all}`,
        `purchase.approved→${approved}`,
        `debt.written_off→${all}`,
        `debt.written_off→${writtenOff}`,
        `purchase.declined→${all}`,
      ].sort();
      assert.deepEqual(got, want);
      assert.ok(rows.every((r) => r.status === 'pending' && r.attempts === 0));
      assert.ok(![lookalike, deleted, disabled, late].some((id) => rows.some((r) => r.endpoint_id === id)));
    });

    it('two deliverers on separate connections send every event exactly once, signed', async () => {
      const [a, b] = await freshDb(2);
      const ledger = new LedgerStore(a);
      const hooks = new WebhookStore(a);
      const r = await receiver();
      r.respond = async () => {
        await new Promise((res) => setTimeout(res, Math.random() * 5));
        return 200;
      };
      const { endpoint } = await hooks.createEndpoint({ url: r.url, events: ['*'] });
      deliverer(a, { concurrency: 8 }).start();
      deliverer(b, { concurrency: 8 }).start();
      const instruments = Array.from({ length: 20 }, (_, i) => `ins_race${i}`);
      // 20 instruments × 10 events, written concurrently while both deliverers claim.
      await Promise.all(
        instruments.map(async (instrumentId) => {
          for (let n = 0; n < 10; n++) await ledger.appendEvent(event('purchase.approved', instrumentId, `k${n}`));
        }),
      );
      await until('all 200 delivered', async () => r.received.length >= 200 && (await counts(a)).delivered === 200);
      await new Promise((res) => setTimeout(res, 200)); // anything sent twice would arrive by now
      const ids = r.received.map((x) => x.event!.id);
      assert.equal(ids.length, 200, 'requests received');
      assert.equal(new Set(ids).size, 200, 'distinct event ids');
      const attempts = await a.db.selectFrom('delivery_attempts').select('id').execute();
      assert.equal(attempts.length, 200, 'one attempt recorded per delivery');
      for (const x of r.received) {
        verify(x.rawBody, x.headers['fps-signature'] as string, endpoint.secret);
        assert.equal(x.headers['fps-event-id'], x.event!.id);
        assert.equal(x.headers['content-type'], 'application/json');
      }
      // Per instrument, the sequences received are 1..10 once sorted.
      for (const instrumentId of instruments) {
        const seqs = r.received
          .filter((x) => x.event!.instrumentId === instrumentId)
          .map((x) => x.event!.sequence)
          .sort((p, q) => p - q);
        assert.deepEqual(
          seqs,
          Array.from({ length: 10 }, (_, i) => i + 1),
        );
      }
    });

    it('retries a failing receiver with backoff (same event id), records every attempt, stops at the first 2xx', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const r = await receiver();
      r.respond = (_req, n) => (n <= 2 ? 500 : 200);
      await hooks.createEndpoint({ url: r.url, events: ['purchase.approved'] });
      deliverer(db).start();
      await ledger.appendEvent(event('purchase.approved'));
      await until('third attempt', async () => r.received.length >= 3 && (await counts(db)).delivered === 1);
      await new Promise((res) => setTimeout(res, 400));
      assert.equal(r.received.length, 3);
      assert.equal(new Set(r.received.map((x) => x.event!.id)).size, 1);
      const [first, second, third] = r.received.map((x) => x.receivedAt);
      assert.ok(second - first >= 70, `first retry after ${second - first} ms (initial 100 ms, −25% jitter)`);
      assert.ok(third - second >= 140, `second retry after ${third - second} ms (200 ms, −25% jitter)`);
      const attempts = await db.db.selectFrom('delivery_attempts').selectAll().orderBy('attempt').execute();
      assert.deepEqual(
        attempts.map((x) => [x.attempt, x.status_code, x.error]),
        [
          [1, 500, 'HTTP 500'],
          [2, 500, 'HTTP 500'],
          [3, 200, null],
        ],
      );
      const delivery = await db.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
      assert.equal(delivery.status, 'delivered');
      assert.equal(delivery.attempts, 3);
      assert.equal(delivery.locked_by, null);
    });

    it('counts a refused connection and a timeout as failed attempts', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const r = await receiver();
      await r.stop(); // nothing listens: connection refused
      const slow = await receiver();
      slow.respond = () => new Promise((res) => setTimeout(() => res(200), 1_000));
      await hooks.createEndpoint({ url: r.url, events: ['*'] });
      await hooks.createEndpoint({ url: slow.url, events: ['*'] });
      deliverer(db, { timeoutMs: 200, retryInitialMs: 60_000 }).start();
      await ledger.appendEvent(event('purchase.approved'));
      const attempts = await until('two attempts', async () => {
        const rows = await db.db.selectFrom('delivery_attempts').selectAll().execute();
        return rows.length >= 2 && rows;
      });
      const errors = attempts.map((x) => x.error ?? '').sort();
      assert.match(errors.join('\n'), /ECONNREFUSED/);
      assert.match(errors.join('\n'), /no answer within 200 ms/);
      assert.ok(attempts.every((x) => x.status_code === null));
    });

    it('after the retry window the delivery fails and an endpoint that never succeeded is disabled, saying why', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const r = await receiver();
      r.respond = () => 503;
      const { endpoint } = await hooks.createEndpoint({ url: r.url, events: ['*'] });
      deliverer(db, { retryWindowMs: 1_200, retryMaxMs: 300 }).start();
      await ledger.appendEvent(event('purchase.approved'));
      const disabled = await until('endpoint disabled', async () => {
        const row = await db.db
          .selectFrom('webhook_endpoints')
          .selectAll()
          .where('id', '=', endpoint.id)
          .executeTakeFirstOrThrow();
        return row.disabled_at !== null && row;
      });
      assert.match(disabled.disabled_reason ?? '', /no delivery succeeded for 1200 ms .*HTTP 503/);
      const delivery = await db.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
      assert.equal(delivery.status, 'failed');
      assert.ok(delivery.attempts >= 3, `${delivery.attempts} attempts in the window`);
      assert.equal(r.received.length, delivery.attempts);
      await ledger.appendEvent(event('purchase.approved'));
      assert.equal((await db.db.selectFrom('deliveries').select('id').execute()).length, 1, 'nothing new queued');
    });

    it('a claim whose deliverer died is sent by another once its lease ends; a lost lease cannot move the row', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const r = await receiver();
      await hooks.createEndpoint({ url: r.url, events: ['*'] });
      await ledger.appendEvent(event('purchase.approved'));
      const [dead] = await hooks.claim(10, 400, 'dead-deliverer');
      assert.ok(dead);
      assert.deepEqual(await hooks.claim(10, 400, 'other'), [], 'leased: nobody else claims it');
      const started = Date.now();
      deliverer(db).start();
      await until('delivered by the live deliverer', async () => (await counts(db)).delivered === 1);
      assert.ok(Date.now() - started >= 300, 'not before the lease ran out');
      // The dead one wakes up and reports: its attempt is kept, the row stays delivered.
      await hooks.recordAttempt(dead, 'dead-deliverer', {
        at: Date.now(),
        statusCode: 500,
        error: 'HTTP 500',
        durationMs: 1,
        status: 'pending',
        nextAttemptAt: Date.now(),
      });
      const delivery = await db.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
      assert.equal(delivery.status, 'delivered');
      assert.equal(r.received.length, 1);
    });

    it('stop() lets an attempt in flight finish and records it', async () => {
      const [db] = await freshDb();
      const ledger = new LedgerStore(db);
      const hooks = new WebhookStore(db);
      const r = await receiver();
      let arrived!: () => void;
      const inFlight = new Promise<void>((res) => (arrived = res));
      r.respond = async () => {
        arrived();
        await new Promise((res) => setTimeout(res, 300));
        return 200;
      };
      await hooks.createEndpoint({ url: r.url, events: ['*'] });
      const d = deliverer(db);
      d.start();
      await ledger.appendEvent(event('purchase.approved'));
      await inFlight;
      await d.stop();
      assert.equal((await counts(db)).delivered, 1);
    });

    // PostgreSQL only: SQLite has one writer, so its seq order is commit order.
    if (dialect === 'postgres')
      it('the event log never pages past an event whose transaction is still open', async function () {
        const [a, b] = await freshDb(2);
        const ledger = new LedgerStore(a);
        const hooks = new WebhookStore(b);
        let release!: () => void;
        const held = new Promise<void>((res) => (release = res));
        let inserted!: () => void;
        const insertedOnce = new Promise<void>((res) => (inserted = res));
        // A writer takes seq N and stays open; another commits seq N+1 meanwhile.
        const slowWriter = a.db.transaction().execute(async (trx) => {
          await beforeEventInsert(trx);
          const row = await trx
            .insertInto('events')
            .values({
              id: 'evt_slow',
              type: 'purchase.approved',
              instrument_id: 'ins_slow',
              customer_id: 'c',
              sequence: 1,
              event_key: 'slow',
              created_at: Date.now(),
              data: '{}',
            })
            .returning(['seq', 'id', 'type', 'created_at'])
            .executeTakeFirstOrThrow();
          await fanOutEvent(trx, row);
          inserted();
          await held;
        });
        await insertedOnce;
        await ledger.appendEvent(event('purchase.approved', 'ins_fast'));
        const visibleNow = await b.db.selectFrom('events').select('id').execute();
        assert.deepEqual(
          visibleNow.map((e) => e.id).length,
          1,
          'the later event is committed and visible, the earlier one is not',
        );
        let listed: string[] | undefined;
        const reading = hooks.eventLog({ limit: 10 }).then((page) => (listed = page.rows.map((e) => e.id)));
        await new Promise((res) => setTimeout(res, 300));
        assert.equal(listed, undefined, 'the log waits for the writer in flight rather than skip its seq');
        release();
        await slowWriter;
        await reading;
        assert.equal(listed!.length, 2);
        assert.equal(listed![0], 'evt_slow', 'oldest (lowest seq) first');
        await sql`select 1`.execute(b.db);
      });
  });
}

async function counts(db: LedgerDb): Promise<Record<string, number>> {
  const rows = await db.db
    .selectFrom('deliveries')
    .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute();
  const out: Record<string, number> = { pending: 0, delivered: 0, failed: 0 };
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}

async function untilNoClients(cluster: PostgresCluster): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await until(
      'client backends gone',
      async () => {
        const { rows } = await admin.query(
          "select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
        );
        return (rows[0] as { n: number }).n === 0;
      },
      5_000,
    );
  } finally {
    await admin.end();
  }
}
