// The ledger store against real databases: one set of cases, run on a SQLite file and on a
// throwaway PostgreSQL 15 cluster. No PostgreSQL binaries → the suite fails (it does not skip).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { startPostgres, type PostgresCluster } from '../../scripts/lib/postgres';
import { openLedgerDb, type LedgerDb } from '../../store/db';
import * as webhooks003 from '../../store/migrations/003_webhooks';
import * as counted004 from '../../store/migrations/004_counted';
import { decodeCursor, encodeCursor, LedgerStore, type OperationWrite } from '../../store/ledger';
import { eventsFor } from '../../store/operation-events';
import type { OperationRow } from '../../store/schema';
import { WebhookStore } from '../../store/webhooks';
import { instrumentStatement } from '../../store/statement';

const DAY = 86_400_000;
/** Every case writes at or after T0 unless it says otherwise (prune relies on it). */
const T0 = Date.UTC(2026, 0, 1);

interface Backend {
  name: 'sqlite' | 'postgres';
  start(): Promise<void>;
  /** A new, empty database (not migrated); its URL. */
  database(name: string): Promise<string>;
  stop(): Promise<void>;
  /** A database server restart (servers only). */
  restart?(): Promise<void>;
}

function sqliteBackend(): Backend {
  let dir: string | undefined;
  return {
    name: 'sqlite',
    async start() {
      dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-test-'));
    },
    async database(name) {
      return `sqlite:${path.join(dir!, `${name}.sqlite`)}`;
    },
    async stop() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  let cluster: PostgresCluster | undefined;
  return {
    name: 'postgres',
    async start() {
      const started = Date.now();
      cluster = await startPostgres();
      console.log(`      PostgreSQL 15 on port ${cluster.port}, started in ${Date.now() - started} ms`);
    },
    database: (name) => cluster!.createDatabase(name),
    async stop() {
      await cluster?.stop();
    },
    async restart() {
      await cluster!.restart({ mode: 'fast' });
    },
  };
}

/** A purchase row of `instrumentId`, overridable field by field. */
function operationRow(
  instrumentId: string,
  operation: string,
  operationId: string,
  fields: Partial<OperationWrite> = {},
): OperationWrite {
  return {
    caller_reference: `${instrumentId}:${operation}:${operationId}`,
    instrument_id: instrumentId,
    customer_id: `cust-${instrumentId}`,
    instrument_type: 'prepaid',
    operation,
    operation_id: operationId,
    amount: 1000,
    currency: 'USD',
    status: 'Pending',
    transaction_id: null,
    decline_code: null,
    decline_reason: null,
    parent_operation_id: null,
    description: null,
    opened_by: null,
    ...fields,
  };
}

/** Records `row` with the events the money activities would emit for it. */
function record(store: LedgerStore, row: OperationWrite): Promise<OperationRow> {
  return store.recordOperation(row, eventsFor({ ...row, refunded_amount: 0, created_at: 0, updated_at: 0 }));
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  describe(`store: the ledger on ${backend.name}`, function () {
    this.timeout(30_000);
    let url: string;
    let ledgerDb: LedgerDb;
    let store: LedgerStore;
    /** The store's clock: cases set it before writing. */
    let now = T0;

    before(async () => {
      await backend.start();
      url = await backend.database('ledger_test');
      ledgerDb = await openLedgerDb(url);
      assert.equal(ledgerDb.dialect, backend.name);
      store = new LedgerStore(ledgerDb, () => now);
    });

    after(async () => {
      await store?.close();
      await backend.stop();
    });

    beforeEach(() => {
      now = T0;
    });

    const eventsOf = (instrumentId: string) => store.events({ instrumentId, limit: 1000 });
    const countOf = async (table: 'operations' | 'events' | 'callbacks') =>
      Number(
        (
          await store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );

    it('migrations apply again without error when the same database is opened twice', async () => {
      await store.recordOperation(operationRow('inst-migrate', 'purchase', 'p1', { status: 'Success' }));
      const again = await openLedgerDb(url);
      try {
        const row = await again.db
          .selectFrom('operations')
          .selectAll()
          .where('caller_reference', '=', 'inst-migrate:purchase:p1')
          .executeTakeFirst();
        assert.equal(row?.status, 'Success', 'the second open sees the first one’s data');
        const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(again.db);
        const names = applied.rows.map((r) => r.name);
        assert.deepEqual(names, [...new Set(names)], 'each migration recorded once');
        assert.ok(names.includes('001_ledger'));
      } finally {
        await again.close();
      }
    });

    it('migrating a database written before 002 numbers the next event after its existing ones', async () => {
      const earlier = await backend.database('ledger_before_002');
      // A database as 001 left it: migrated, then the later migrations taken back out.
      const { db } = await openLedgerDb(earlier);
      try {
        await counted004.down(db as unknown as Kysely<unknown>);
        await sql`delete from kysely_migration where name = '004_counted'`.execute(db);
        await webhooks003.down(db as unknown as Kysely<unknown>);
        await sql`delete from kysely_migration where name = '003_webhooks'`.execute(db);
        await db.schema.dropTable('event_sequences').execute();
        await sql`delete from kysely_migration where name = '002_event_sequences'`.execute(db);
        for (const sequence of [1, 2, 3]) {
          await sql`insert into events (id, type, instrument_id, customer_id, sequence, event_key, created_at, data)
            values (${`evt-${sequence}`}, 'custom', 'inst-old', 'c', ${sequence}, ${`k${sequence}`}, ${T0}, '{}')`.execute(
            db,
          );
        }
        await sql`insert into operations (caller_reference, instrument_id, customer_id, instrument_type, operation,
            operation_id, amount, currency, status, created_at, updated_at)
          values ('inst-old:pay:p1', 'inst-old', 'c', 'prepaid', 'purchase', 'p1', 100, 'USD', 'Success', ${T0}, ${T0})`.execute(
          db,
        );
      } finally {
        await db.destroy();
      }
      const migrated = new LedgerStore(await openLedgerDb(earlier), () => now);
      try {
        const old = await migrated.operation('inst-old', 'purchase', 'p1');
        assert.equal(old?.counted_at, T0, 'rows from before 004 were counted by the workflows that wrote them');
        await migrated.appendEvent({
          type: 'custom',
          instrumentId: 'inst-old',
          customerId: 'c',
          eventKey: 'k4',
          data: {},
        });
        await migrated.appendEvent({
          type: 'custom',
          instrumentId: 'inst-new',
          customerId: 'c',
          eventKey: 'k1',
          data: {},
        });
        const events = await migrated.events({ limit: 10 });
        assert.deepEqual(
          events.map((e) => [e.instrument_id, e.sequence]),
          [
            ['inst-old', 1],
            ['inst-old', 2],
            ['inst-old', 3],
            ['inst-old', 4],
            ['inst-new', 1],
          ],
        );
      } finally {
        await migrated.close();
      }
    });

    it('money and times round-trip as exact JS numbers (BIGINT)', async () => {
      now = T0 + 123;
      const amount = Number.MAX_SAFE_INTEGER;
      const row = await store.recordOperation(
        operationRow('inst-bigint', 'fund', 'f1', { amount, status: 'Success' }),
        [{ type: 'funding.succeeded', instrumentId: 'inst-bigint', customerId: 'c', eventKey: 'k', data: {} }],
      );
      const read = (await store.operationByCallerReference(row.caller_reference))!;
      for (const value of [row, read]) {
        assert.equal(typeof value.amount, 'number');
        assert.equal(value.amount, amount);
        assert.equal(value.refunded_amount, 0);
        assert.equal(typeof value.created_at, 'number');
        assert.equal(value.created_at, T0 + 123);
        assert.equal(value.updated_at, T0 + 123);
      }
      const [event] = await eventsOf('inst-bigint');
      assert.equal(typeof event.seq, 'number');
      assert.equal(event.sequence, 1);
      assert.equal(event.created_at, T0 + 123);
      const [line] = (await instrumentStatement(store, 'inst-bigint', 'prepaid')).lines;
      assert.equal(line.running, amount);
    });

    it('markCounted: new rows are uncounted; it marks the named operations of one instrument, once', async () => {
      now = T0 + 10;
      for (const id of ['a', 'b', 'c']) await record(store, operationRow('inst-count', 'purchase', id));
      await record(store, operationRow('inst-count-other', 'purchase', 'a'));
      assert.equal((await store.operation('inst-count', 'purchase', 'a'))?.counted_at, null);
      now = T0 + 11;
      const marked = await store.markCounted('inst-count', [
        { operation: 'purchase', operationId: 'a' },
        { operation: 'purchase', operationId: 'b' },
        { operation: 'refund', operationId: 'c' },
      ]);
      assert.equal(marked, 2, 'a and b (c is a purchase, not a refund)');
      now = T0 + 12;
      assert.equal(await store.markCounted('inst-count', [{ operation: 'purchase', operationId: 'a' }]), 0);
      assert.equal((await store.operation('inst-count', 'purchase', 'a'))?.counted_at, T0 + 11, 'the first mark stays');
      assert.equal((await store.operation('inst-count', 'purchase', 'c'))?.counted_at, null);
      assert.equal((await store.operation('inst-count-other', 'purchase', 'a'))?.counted_at, null, 'other instrument');
    });

    it('upsert by CallerReference: two writes are one row, Pending advances to Success', async () => {
      const pending = operationRow('inst-upsert', 'purchase', 'p1');
      now = T0 + 1;
      await record(store, pending);
      now = T0 + 2;
      await record(store, pending);
      now = T0 + 3;
      const done = await record(store, { ...pending, status: 'Success', transaction_id: 'tx-1' });
      assert.equal(done.status, 'Success');
      assert.equal(done.transaction_id, 'tx-1');
      assert.equal(done.created_at, T0 + 1, 'created_at is the first write’s');
      assert.equal(done.updated_at, T0 + 3);
      const { rows } = await store.transactions({ instrumentId: 'inst-upsert', limit: 10 });
      assert.equal(rows.length, 1);
      assert.deepEqual(rows[0], done);
    });

    it('a final row is not moved back by a late Pending or Failure', async () => {
      const base = operationRow('inst-final', 'purchase', 'p1');
      now = T0 + 1;
      const success = await record(store, { ...base, status: 'Success', transaction_id: 'tx-1' });
      now = T0 + 2;
      for (const late of [
        { status: 'Pending', transaction_id: null },
        { status: 'Failure', transaction_id: 'tx-other', decline_code: 'X', decline_reason: 'late' },
        { status: 'Reserved' },
      ]) {
        assert.deepEqual(await record(store, { ...base, ...late }), success);
      }
      assert.deepEqual(await store.resolveOperation(base.caller_reference, 'Failure'), success);
      assert.deepEqual(await store.operationByCallerReference(base.caller_reference), success);

      // Failure and Declined are final too.
      const failed = operationRow('inst-final', 'purchase', 'p2', { status: 'Failure', decline_code: 'NSF' });
      const failedRow = await record(store, failed);
      assert.deepEqual(await record(store, { ...failed, status: 'Success', decline_code: null }), failedRow);
      const declined = operationRow('inst-final', 'purchase', 'p3', { status: 'Declined' });
      const declinedRow = await record(store, declined);
      assert.deepEqual(await record(store, { ...declined, status: 'Pending' }), declinedRow);

      assert.deepEqual(
        (await eventsOf('inst-final')).map((e) => e.type),
        ['purchase.approved', 'purchase.declined', 'purchase.declined'],
        'only the first outcome of each operation emits an event',
      );
      assert.equal(await store.resolveOperation('inst-final:purchase:unknown', 'Success'), undefined);
    });

    it('a refund adds to its purchase’s refunded_amount once, however often it is written', async () => {
      const id = 'inst-refund';
      await record(store, operationRow(id, 'purchase', 'p1', { amount: 1000, status: 'Success' }));
      const refund = operationRow(id, 'refund', 'r1', { amount: 300, parent_operation_id: 'p1' });
      await record(store, refund);
      const purchase = () => store.operation(id, 'purchase', 'p1');
      assert.equal((await purchase())?.refunded_amount, 0, 'a Pending refund moves nothing');
      await record(store, { ...refund, status: 'Success' });
      await record(store, { ...refund, status: 'Success' });
      await store.resolveOperation(refund.caller_reference, 'Success');
      assert.equal((await purchase())?.refunded_amount, 300);

      // Written Success on the first write, twice.
      const second = operationRow(id, 'refund', 'r2', { amount: 200, parent_operation_id: 'p1', status: 'Success' });
      await record(store, second);
      await record(store, second);
      assert.equal((await purchase())?.refunded_amount, 500);

      // A failed refund adds nothing; a capture is a parent too.
      await record(
        store,
        operationRow(id, 'refund', 'r3', { amount: 100, parent_operation_id: 'p1', status: 'Failure' }),
      );
      assert.equal((await purchase())?.refunded_amount, 500);
      await record(store, operationRow(id, 'capture', 'c1', { amount: 800, status: 'Success' }));
      await record(
        store,
        operationRow(id, 'refund', 'r4', { amount: 50, parent_operation_id: 'c1', status: 'Success' }),
      );
      assert.equal((await store.operation(id, 'capture', 'c1'))?.refunded_amount, 50);
      assert.equal((await purchase())?.refunded_amount, 500);
    });

    it('concurrent writes of one refund add to refunded_amount once', async () => {
      const id = 'inst-refund-race';
      await record(store, operationRow(id, 'purchase', 'p1', { amount: 5000, status: 'Success' }));
      const refund = operationRow(id, 'refund', 'r1', { amount: 700, parent_operation_id: 'p1', status: 'Success' });
      const rows = await Promise.all(Array.from({ length: 20 }, () => record(store, refund)));
      assert.ok(rows.every((r) => r.status === 'Success'));
      assert.equal((await store.operation(id, 'purchase', 'p1'))?.refunded_amount, 700);
      assert.deepEqual(
        (await eventsOf(id)).map((e) => [e.type, e.sequence]),
        [
          ['purchase.approved', 1],
          ['refund.succeeded', 2],
        ],
      );
    });

    it('concurrent late answers never move a final row back', async () => {
      const base = operationRow('inst-final-race', 'purchase', 'p1');
      const writes = Array.from({ length: 20 }, (_, i) =>
        record(store, i % 2 ? { ...base, status: 'Success', transaction_id: 'tx-1' } : base),
      );
      await Promise.all(writes);
      const row = await store.operationByCallerReference(base.caller_reference);
      assert.equal(row?.status, 'Success');
      assert.equal(row?.transaction_id, 'tx-1');
    });

    it('events: one per (instrument, event_key), sequence 1..n gap-free per instrument', async () => {
      const [a, b] = ['inst-events-a', 'inst-events-b'];
      for (let i = 1; i <= 3; i++) {
        for (const id of [a, b]) {
          const pending = operationRow(id, 'purchase', `p${i}`);
          await record(store, pending);
          await record(store, pending);
          await record(store, { ...pending, status: 'Success' });
          await record(store, { ...pending, status: 'Success' });
        }
      }
      const event = { type: 'custom', instrumentId: a, customerId: 'c', eventKey: 'custom:1', data: { n: 1 } };
      await store.appendEvent(event);
      await store.appendEvent({ ...event, data: { n: 2 } });

      const ofA = await eventsOf(a);
      assert.deepEqual(
        ofA.map((e) => e.sequence),
        [1, 2, 3, 4, 5, 6, 7],
      );
      assert.deepEqual(
        ofA.map((e) => e.event_key),
        [
          'purchase:p1:purchase.pending',
          'purchase:p1:purchase.approved',
          'purchase:p2:purchase.pending',
          'purchase:p2:purchase.approved',
          'purchase:p3:purchase.pending',
          'purchase:p3:purchase.approved',
          'custom:1',
        ],
      );
      assert.deepEqual(JSON.parse(ofA[6].data), { n: 1 }, 'the first write of a key wins');
      assert.deepEqual(
        (await eventsOf(b)).map((e) => e.sequence),
        [1, 2, 3, 4, 5, 6],
      );
      const seqs = (await store.events({ limit: 1000 })).map((e) => e.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        'the outbox is ordered by seq',
      );
    });

    it('events stay one per key and gap-free under 20 concurrent recordOperation calls', async () => {
      const id = 'inst-events-race';
      const writes = Array.from({ length: 20 }, (_, i) =>
        record(store, operationRow(id, 'purchase', `p${i % 10}`, { status: 'Success' })),
      );
      // Another instrument at the same time: its sequence is its own.
      writes.push(
        ...Array.from({ length: 5 }, (_, i) =>
          record(store, operationRow(`${id}-2`, 'fund', `f${i}`, { status: 'Success' })),
        ),
      );
      await Promise.all(writes);
      const events = await eventsOf(id);
      assert.deepEqual(
        events.map((e) => e.sequence),
        Array.from({ length: 10 }, (_, i) => i + 1),
      );
      assert.equal(new Set(events.map((e) => e.event_key)).size, 10);
      assert.deepEqual(
        (await eventsOf(`${id}-2`)).map((e) => e.sequence),
        [1, 2, 3, 4, 5],
      );
    });

    describe('transactions: newest-first keyset pages', () => {
      const id = 'inst-pages';
      const OPERATIONS = ['purchase', 'refund', 'fund'];
      const STATUSES = ['Success', 'Pending', 'Failure', 'Success'];
      /** Newest first, the order pages must follow. */
      let expected: OperationRow[];

      before(async () => {
        const written: OperationRow[] = [];
        for (let i = 0; i < 120; i++) {
          // Three rows share each millisecond: the caller_reference breaks the tie.
          now = T0 + Math.floor(i / 3) * 1000;
          written.push(
            await store.recordOperation(
              operationRow(id, OPERATIONS[i % 3], `op-${String(i).padStart(3, '0')}`, {
                status: STATUSES[i % 4],
                customer_id: 'cust-pages',
              }),
            ),
          );
        }
        expected = written.sort(
          (x, y) => y.created_at - x.created_at || (x.caller_reference < y.caller_reference ? 1 : -1),
        );
      });

      async function allPages(q: Parameters<LedgerStore['transactions']>[0]): Promise<OperationRow[][]> {
        const pages: OperationRow[][] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await store.transactions({ ...q, cursor });
          pages.push(page.rows);
          if (!page.nextCursor) return pages;
          assert.ok(pages.length < 20, 'paging terminates');
          cursor = page.nextCursor;
        }
      }

      it('120 rows at limit 50: pages of 50, 50 and 20, no duplicates, no gaps', async () => {
        const pages = await allPages({ instrumentId: id, limit: 50 });
        assert.deepEqual(
          pages.map((p) => p.length),
          [50, 50, 20],
        );
        const refs = pages.flat().map((r) => r.caller_reference);
        assert.equal(new Set(refs).size, 120);
        assert.deepEqual(
          refs,
          expected.map((r) => r.caller_reference),
        );
        assert.deepEqual(
          (await allPages({ customerId: 'cust-pages', limit: 50 })).flat(),
          expected,
          'by customer: the same rows',
        );
        // Exactly one page's worth: no empty page after it.
        assert.deepEqual(
          (await allPages({ instrumentId: id, limit: 120 })).map((p) => p.length),
          [120],
        );
      });

      it('filters by operation, status and [from, to)', async () => {
        const check = async (q: Partial<Parameters<LedgerStore['transactions']>[0]>, want: OperationRow[]) => {
          const got = (await allPages({ instrumentId: id, limit: 7, ...q })).flat();
          assert.deepEqual(
            got.map((r) => r.caller_reference),
            want.map((r) => r.caller_reference),
            JSON.stringify(q),
          );
          assert.ok(want.length > 0, 'a filter that selects something');
        };
        await check(
          { operation: 'refund' },
          expected.filter((r) => r.operation === 'refund'),
        );
        await check(
          { status: 'Pending' },
          expected.filter((r) => r.status === 'Pending'),
        );
        await check(
          { operation: 'purchase', status: 'Success' },
          expected.filter((r) => r.operation === 'purchase' && r.status === 'Success'),
        );
        const [from, to] = [T0 + 10_000, T0 + 20_000];
        await check(
          { from, to },
          expected.filter((r) => r.created_at >= from && r.created_at < to),
        );
        assert.equal(expected.filter((r) => r.created_at >= from && r.created_at < to).length, 30);
        await check({ from: T0 + 39_000 }, expected.slice(0, 3));
        await check({ to: T0 + 1000 }, expected.slice(-3));
        assert.deepEqual((await store.transactions({ instrumentId: id, from: T0 + 40_000, limit: 5 })).rows, []);
      });

      it('a garbage cursor decodes to undefined and is not a query error', async () => {
        const garbage = [
          '',
          'not base64 !!',
          'bm90IGpzb24',
          Buffer.from('{"a":1}').toString('base64url'),
          Buffer.from('[1]').toString('base64url'),
          Buffer.from('"ab"').toString('base64url'),
          Buffer.from('null').toString('base64url'),
          Buffer.from('["1","x"]').toString('base64url'),
          Buffer.from('[1.5,"x"]').toString('base64url'),
          Buffer.from('[1e400,"x"]').toString('base64url'),
        ];
        for (const cursor of garbage) {
          assert.equal(decodeCursor(cursor), undefined, cursor);
          const page = await store.transactions({ instrumentId: id, limit: 5, cursor });
          assert.deepEqual(page.rows, expected.slice(0, 5), 'read from the top');
        }
        const row = expected[10];
        assert.deepEqual(decodeCursor(encodeCursor(row)), {
          createdAt: row.created_at,
          callerReference: row.caller_reference,
        });
      });
    });

    describe('statements', () => {
      /** Writes the rows at T0 + i days, in order. */
      async function history(rows: OperationWrite[]): Promise<void> {
        for (const [i, row] of rows.entries()) {
          now = T0 + i * DAY;
          await store.recordOperation(row);
        }
      }
      const day = (n: number) => T0 + n * DAY;

      it('prepaid: opening, running and closing balance, only successes move money', async () => {
        const id = 'inst-statement-prepaid';
        await history([
          operationRow(id, 'fund', 'f1', { amount: 10_000, status: 'Success' }), // day 0: 10000
          operationRow(id, 'purchase', 'p1', { amount: 2_500, status: 'Success' }), // day 1: 7500
          operationRow(id, 'purchase', 'p2', { amount: 999, status: 'Failure' }), // day 2: 7500
          operationRow(id, 'refund', 'r1', { amount: 500, status: 'Success', parent_operation_id: 'p1' }), // day 3: 8000
          operationRow(id, 'purchase', 'p3', { amount: 1_000, status: 'Pending' }), // day 4: 8000
          operationRow(id, 'purchase', 'p4', { amount: 1_000, status: 'Success' }), // day 5: 7000
        ]);
        const all = await instrumentStatement(store, id, 'prepaid');
        assert.equal(all.opening, 0);
        assert.equal(all.closing, 7_000);
        assert.equal(all.currency, 'USD');
        assert.deepEqual(
          all.lines.map((l) => l.running),
          [10_000, 7_500, 7_500, 8_000, 8_000, 7_000],
        );
        assert.deepEqual(all.totals, { fund: 10_000, purchase: 3_500, refund: 500 });

        const window = await instrumentStatement(store, id, 'prepaid', day(1), day(4));
        assert.equal(window.opening, 10_000);
        assert.deepEqual(
          window.lines.map((l) => [l.row.operation_id, l.running]),
          [
            ['p1', 7_500],
            ['p2', 7_500],
            ['r1', 8_000],
          ],
        );
        assert.equal(window.closing, 8_000);
        assert.deepEqual(window.totals, { purchase: 2_500, refund: 500 });

        const empty = await instrumentStatement(store, id, 'prepaid', day(10), day(11));
        assert.deepEqual([empty.opening, empty.closing, empty.lines.length], [7_000, 7_000, 0]);
        assert.equal(empty.currency, 'USD', 'the currency of earlier rows');
      });

      it('postpaid: debt grows with purchases, shrinks with refunds, settlements and write-offs', async () => {
        const id = 'inst-statement-postpaid';
        const postpaid = { instrument_type: 'postpaid', status: 'Success' };
        await history([
          operationRow(id, 'purchase', 'p1', { ...postpaid, amount: 3_000 }), // day 0: 3000
          operationRow(id, 'purchase', 'p2', { ...postpaid, amount: 2_000 }), // day 1: 5000
          operationRow(id, 'refund', 'r1', { ...postpaid, amount: 500, parent_operation_id: 'p2' }), // day 2: 4500
          operationRow(id, 'settle', 's1', { ...postpaid, amount: 4_000 }), // day 3: 500
          operationRow(id, 'settle', 's2', { ...postpaid, amount: 500, status: 'Failure' }), // day 4: 500
          operationRow(id, 'writeOff', 'w1', { ...postpaid, amount: 500 }), // day 5: 0
        ]);
        const all = await instrumentStatement(store, id, 'postpaid');
        assert.deepEqual(
          all.lines.map((l) => l.running),
          [3_000, 5_000, 4_500, 500, 500, 0],
        );
        assert.equal(all.closing, 0);
        assert.deepEqual(all.totals, { purchase: 5_000, refund: 500, settle: 4_000, writeOff: 500 });

        const fromOnly = await instrumentStatement(store, id, 'postpaid', day(2));
        assert.equal(fromOnly.opening, 5_000);
        assert.equal(fromOnly.lines.length, 4);
        assert.equal(fromOnly.closing, 0);
        const toOnly = await instrumentStatement(store, id, 'postpaid', undefined, day(3));
        assert.equal(toOnly.opening, 0);
        assert.equal(toOnly.closing, 4_500);
        assert.deepEqual(
          (await store.operationsBetween({ instrumentId: id }, day(1), day(3))).map((r) => r.operation_id),
          ['p2', 'r1'],
        );
      });
      it('postpaid: a refund of a purchase already settled leaves the debt at 0, as the workflow does', async () => {
        const id = 'inst-statement-refund-after-settle';
        const postpaid = { instrument_type: 'postpaid', status: 'Success' };
        await history([
          operationRow(id, 'purchase', 'p1', { ...postpaid, amount: 700 }), // day 0: 700
          operationRow(id, 'settle', 's1', { ...postpaid, amount: 700 }), // day 1: 0
          operationRow(id, 'refund', 'r1', { ...postpaid, amount: 705, parent_operation_id: 'p1' }), // day 2: 0, not -705
          operationRow(id, 'purchase', 'p2', { ...postpaid, amount: 300 }), // day 3: 300
        ]);
        const all = await instrumentStatement(store, id, 'postpaid');
        assert.deepEqual(
          all.lines.map((l) => l.running),
          [700, 0, 0, 300],
        );
        assert.equal(all.closing, 300);
        assert.deepEqual(all.totals, { purchase: 1_000, settle: 700, refund: 705 }, 'totals still show every refund');
        const later = await instrumentStatement(store, id, 'postpaid', day(3));
        assert.equal(later.opening, 0, 'the opening debt follows the same rule');
        assert.equal(later.closing, 300);
      });
    });

    it('recordCallback never stores the signature fields', async () => {
      const secretish = 'c2lnbmF0dXJlLXZhbHVlLXRoYXQtbXVzdC1ub3QtYmUtc3RvcmVk';
      await store.recordCallback({
        kind: 'ipn',
        instrumentId: 'inst-callback',
        callerReference: 'inst-callback:pay:p1',
        transactionId: 'tx-cb',
        status: 'SUCCESS',
        parameters: {
          transactionId: 'tx-cb',
          transactionStatus: 'SUCCESS',
          callerReference: 'inst-callback:pay:p1',
          signature: secretish,
          signatureVersion: '2',
          signatureMethod: 'RSA-SHA1',
          certificateUrl: 'https://fps.example/cert.pem',
        },
      });
      const [callback] = await store.callbacksFor('inst-callback:pay:p1');
      assert.equal(callback.kind, 'ipn');
      assert.equal(callback.received_at, T0);
      assert.deepEqual(JSON.parse(callback.parameters), {
        transactionId: 'tx-cb',
        transactionStatus: 'SUCCESS',
        callerReference: 'inst-callback:pay:p1',
      });
      assert.ok(!JSON.stringify(callback).includes(secretish));
      assert.ok(!/signature|certificate/i.test(callback.parameters));
    });

    it('prune(days) deletes only rows older than the window, in every table', async () => {
      const id = 'inst-prune';
      const before = {
        operations: await countOf('operations'),
        events: await countOf('events'),
        callbacks: await countOf('callbacks'),
      };
      // Old: 40 and 31 days before T0; recent: 29 days before (inside a 30-day window).
      for (const [ago, opId] of [
        [40, 'old-1'],
        [31, 'old-2'],
        [29, 'recent'],
      ] as const) {
        now = T0 - ago * DAY;
        await record(store, operationRow(id, 'purchase', opId, { status: 'Success' }));
        await store.recordCallback({ kind: 'return', callerReference: `${id}:${opId}`, parameters: { a: '1' } });
      }
      // An old operation updated recently is kept.
      now = T0 - 35 * DAY;
      const revived = operationRow(id, 'purchase', 'revived');
      await record(store, revived);
      now = T0 - DAY;
      await record(store, { ...revived, status: 'Success' });

      now = T0;
      assert.equal(await store.prune(30), 2);
      const left = await store.operationsBetween({ instrumentId: id });
      assert.deepEqual(
        left.map((r) => r.operation_id),
        ['revived', 'recent'],
      );
      assert.deepEqual(
        (await eventsOf(id)).map((e) => e.event_key),
        ['purchase:recent:purchase.approved', 'purchase:revived:purchase.approved'],
      );
      assert.deepEqual(
        {
          operations: await countOf('operations'),
          events: await countOf('events'),
          callbacks: await countOf('callbacks'),
        },
        { operations: before.operations + 2, events: before.events + 2, callbacks: before.callbacks + 1 },
        'nothing else was deleted',
      );
      assert.equal(await store.prune(30), 0, 'pruning again deletes nothing');
    });

    it('two processes writing one ledger at once (the API and the worker): no write fails, each refund counts once', async function () {
      this.timeout(120_000);
      const shared = await backend.database('ledger_two_writers');
      await (await openLedgerDb(shared)).close(); // migrated, as a deployed file is
      const purchases = 150;
      const writers = ['a', 'b'].map((name) => {
        const child = spawn(
          process.execPath,
          [require.resolve('tsx/cli'), path.join(__dirname, 'sqlite-writer.ts'), shared, name, String(purchases)],
          { stdio: ['pipe', 'pipe', 'inherit'] },
        );
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
        return { child, output: () => out, exited };
      });
      for (const w of writers)
        for (let waited = 0; !w.output().includes('ready'); waited += 20) {
          assert.ok(waited < 60_000, 'writer did not open the ledger');
          await delay(20);
        }
      // Both at once: each writes while the other's transactions come and go.
      for (const w of writers) w.child.stdin.end('go\n');
      const codes = await Promise.all(writers.map((w) => w.exited));
      for (const [i, w] of writers.entries()) {
        const report = JSON.parse(
          w
            .output()
            .split('\n')
            .find((l) => l.startsWith('{')) ?? '{}',
        ) as {
          errors?: string[];
        };
        assert.deepEqual(report.errors, [], `writer ${i}: ${report.errors?.slice(0, 3).join('; ')}`);
        assert.equal(codes[i], 0);
      }
      const check = new LedgerStore(await openLedgerDb(shared));
      try {
        const rows = await check.operationsBetween({ instrumentId: 'inst-two-writers' });
        const bought = rows.filter((r) => r.operation === 'purchase');
        assert.equal(bought.length, purchases);
        assert.ok(bought.every((r) => r.status === 'Success' && r.refunded_amount === 20));
        assert.equal(rows.filter((r) => r.operation === 'refund' && r.status === 'Success').length, 2 * purchases);
        const events = await check.events({ instrumentId: 'inst-two-writers', limit: 10_000 });
        assert.deepEqual(
          events.map((e) => e.sequence),
          events.map((_, i) => i + 1),
          'gap-free sequence',
        );
        // purchase.pending and purchase.approved once per purchase, refund.succeeded once per refund.
        assert.equal(events.length, 2 * purchases + 2 * purchases);
      } finally {
        await check.close();
      }
    });

    it('prune keeps what is unfinished: Pending and Reserved operations with their callbacks, events still being delivered', async () => {
      // Its own database: the webhook endpoint would otherwise get deliveries of every other case.
      const pruning = new LedgerStore(await openLedgerDb(await backend.database('ledger_prune_keeps')), () => now);
      const hooks = new WebhookStore(pruning.ledger, () => now);
      const id = 'inst-keep';
      const ids = (rows: Array<{ operation_id: string }>) => rows.map((r) => r.operation_id).sort();
      /** Sends every due delivery, each ending as `outcome` says for its event's operation id. */
      const deliver = async (outcome: (operationId: string) => 'delivered' | 'pending' | 'failed') => {
        for (const claimed of await hooks.claim(100, 60_000, 'test-deliverer')) {
          const status = outcome(String((JSON.parse(claimed.event.data) as { id: string }).id));
          await hooks.recordAttempt(claimed, 'test-deliverer', {
            at: now,
            statusCode: status === 'delivered' ? 200 : 500,
            error: status === 'delivered' ? null : 'HTTP 500',
            durationMs: 1,
            status,
            nextAttemptAt: status === 'pending' ? now + 60_000 : undefined,
          });
        }
      };
      try {
        now = T0 - 40 * DAY;
        await hooks.createEndpoint({ url: 'https://merchant.example/hooks', events: ['*'] });
        for (const [opId, status] of [
          ['delivered', 'Success'],
          ['failing', 'Success'],
          ['given-up', 'Success'],
          ['declined', 'Declined'],
          ['pending', 'Pending'],
        ] as const) {
          await record(pruning, operationRow(id, 'purchase', opId, { status }));
          await pruning.recordCallback({
            kind: 'ipn',
            instrumentId: id,
            callerReference: `${id}:purchase:${opId}`,
            status,
            parameters: { status },
          });
        }
        await record(pruning, operationRow(id, 'reserve', 'held', { status: 'Reserved' }));
        // Every endpoint got its event; one is still failing (retried later), one was given up on.
        await deliver((opId) => (opId === 'failing' ? 'pending' : opId === 'given-up' ? 'failed' : 'delivered'));

        now = T0;
        assert.equal(await pruning.prune(30), 4, 'the four final operations');
        await hooks.prune(30);
        assert.deepEqual(ids(await pruning.operationsBetween({ instrumentId: id })), ['held', 'pending']);
        assert.deepEqual(
          (await pruning.callbacksFor(`${id}:purchase:pending`)).map((c) => c.status),
          ['Pending'],
          'a Pending operation keeps its callbacks',
        );
        assert.deepEqual(await pruning.callbacksFor(`${id}:purchase:delivered`), []);
        const kept = await pruning.events({ instrumentId: id, limit: 100 });
        assert.deepEqual(
          kept.map((e) => e.event_key),
          ['purchase:failing:purchase.approved'],
          'only the event whose delivery is still being retried',
        );
        const [failing] = await hooks.deliveriesOf(kept[0].id);
        assert.equal(failing.status, 'pending');

        // Once delivered, the next prune takes it.
        now = T0 + 60_000;
        await deliver(() => 'delivered');
        await pruning.prune(30);
        assert.deepEqual(await pruning.events({ instrumentId: id, limit: 100 }), []);
        assert.deepEqual(ids(await pruning.operationsBetween({ instrumentId: id })), ['held', 'pending']);
      } finally {
        await pruning.close();
      }
    });

    it('webhook prune keeps every attempt of a delivery still pending, and a finished delivery’s with it', async () => {
      // Its own database: the endpoint would otherwise get deliveries of every other case.
      const pruning = new LedgerStore(await openLedgerDb(await backend.database('ledger_prune_attempts')), () => now);
      const hooks = new WebhookStore(pruning.ledger, () => now);
      const id = 'inst-attempts';
      const opIdOf = (claimed: { event: { data: string } }) => (JSON.parse(claimed.event.data) as { id: string }).id;
      /** Sends every due delivery: `retried` fails (and is retried in a minute), any other is delivered. */
      const deliver = async (failing: string | undefined) => {
        for (const claimed of await hooks.claim(100, 60_000, 'test-deliverer')) {
          const fails = opIdOf(claimed) === failing;
          await hooks.recordAttempt(claimed, 'test-deliverer', {
            at: now,
            statusCode: fails ? 500 : 200,
            error: fails ? 'HTTP 500' : null,
            durationMs: 1,
            status: fails ? 'pending' : 'delivered',
            nextAttemptAt: fails ? now + 60_000 : undefined,
          });
        }
      };
      const attemptsOf = async (eventId: string) =>
        (await pruning.db.selectFrom('delivery_attempts').select('attempt').where('event_id', '=', eventId).execute())
          .map((a) => a.attempt)
          .sort();
      const eventOf = async (opId: string) =>
        (await pruning.events({ instrumentId: id, limit: 100 })).find((e) =>
          e.event_key.startsWith(`purchase:${opId}:`),
        )!;
      try {
        now = T0 - 40 * DAY;
        await hooks.createEndpoint({ url: 'https://merchant.example/hooks', events: ['*'] });
        for (const opId of ['retried', 'done'])
          await record(pruning, operationRow(id, 'purchase', opId, { status: 'Success' }));
        await deliver('retried');
        now = T0 - 35 * DAY;
        await deliver('retried');
        const [retried, done] = [await eventOf('retried'), await eventOf('done')];
        assert.deepEqual(await attemptsOf(retried.id), [1, 2]);
        assert.deepEqual(await attemptsOf(done.id), [1]);

        now = T0;
        await hooks.prune(30);
        const [pending] = await hooks.deliveriesOf(retried.id);
        assert.equal(pending.status, 'pending');
        assert.deepEqual(
          pending.attemptRows.map((a) => a.attempt),
          [1, 2],
          'a pending delivery keeps its attempts older than the window',
        );
        assert.deepEqual(await hooks.deliveriesOf(done.id), [], 'a delivery finished 40 days ago is pruned');
        assert.deepEqual(await attemptsOf(done.id), [], '… with its attempt');

        // It finishes now: its whole history stays until it is itself older than the window.
        await deliver(undefined);
        await hooks.prune(30);
        const [finished] = await hooks.deliveriesOf(retried.id);
        assert.equal(finished.status, 'delivered');
        assert.deepEqual(
          finished.attemptRows.map((a) => a.attempt),
          [1, 2, 3],
        );
        now = T0 + 31 * DAY;
        await hooks.prune(30);
        assert.deepEqual(await hooks.deliveriesOf(retried.id), []);
        assert.deepEqual(await attemptsOf(retried.id), []);
      } finally {
        await pruning.close();
      }
    });

    it('after prune, an instrument’s event sequence continues where it was (no reuse)', async () => {
      const id = 'inst-prune-sequence';
      now = T0 - 60 * DAY;
      const pending = operationRow(id, 'purchase', 'p1');
      await record(store, pending);
      await record(store, { ...pending, status: 'Success' });
      assert.deepEqual(
        (await eventsOf(id)).map((e) => e.sequence),
        [1, 2],
      );
      now = T0;
      await store.prune(30);
      assert.deepEqual(await eventsOf(id), []);
      await record(store, operationRow(id, 'purchase', 'p2', { status: 'Success' }));
      assert.deepEqual(
        (await eventsOf(id)).map((e) => e.sequence),
        [3],
        'a consumer that saw 1 and 2 must not see another 1',
      );
    });

    if (backend.restart) {
      describe('server restart', () => {
        it('idle connections lost to a restart are reported, not thrown, and the next write reconnects', async () => {
          const lost: Error[] = [];
          const other = new LedgerStore(
            await openLedgerDb(url, { onConnectionLost: (err) => lost.push(err) }),
            () => now,
          );
          try {
            await Promise.all([1, 2, 3].map((i) => other.operationByCallerReference(`none-${i}`)));
            await backend.restart!();
            for (let waited = 0; lost.length === 0 && waited < 5_000; waited += 50) await delay(50);
            assert.ok(lost.length > 0, 'the pool reported its lost connections');
            const row = await record(other, operationRow('inst-restart', 'purchase', 'p1', { status: 'Success' }));
            assert.equal(row.status, 'Success');
            assert.equal((await store.operationByCallerReference(row.caller_reference))?.status, 'Success');
          } finally {
            await other.close();
          }
        });

        it('a connection lost while a transaction holds it (between statements) fails that transaction, not the process', async () => {
          const lost: Error[] = [];
          const other = new LedgerStore(
            await openLedgerDb(url, { onConnectionLost: (err) => lost.push(err) }),
            () => now,
          );
          try {
            // Checked out of the pool and idle inside a transaction when the server goes away: pg
            // emits 'error' on that client, which without a listener ends the process (the API did
            // in the cluster suite's PostgreSQL restart).
            const held = other.db.transaction().execute(async (trx) => {
              await trx.selectFrom('operations').select('caller_reference').limit(1).execute();
              await backend.restart!();
              for (let waited = 0; lost.length === 0 && waited < 5_000; waited += 50) await delay(50);
              await trx.selectFrom('operations').select('caller_reference').limit(1).execute();
            });
            await assert.rejects(held, 'the transaction whose connection was lost fails');
            assert.ok(lost.length > 0, 'the lost connection was reported');
            const row = await record(other, operationRow('inst-restart', 'purchase', 'p2', { status: 'Success' }));
            assert.equal(row.status, 'Success', 'the next write reconnects');
          } finally {
            await other.close();
          }
        });
      });
    }
  });
}
