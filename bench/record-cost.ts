// `npm run bench:record-cost`: what the record (the ledger store) costs on the purchase path, as
// same-run comparisons. Three stacks (sandbox, worker, API processes) on ONE Temporal dev server:
//   none      worker and API without a record (bench/lib/no-record/: the product's entry points
//             always open LEDGER_DATABASE_URL, so "no record" exists only as these two entry points
//             over the same createActivities()/createApi() without a store);
//   sqlite    the product's worker/main.ts and api/main.ts on a SQLite file (the default of npm start);
//   sqlite-uncached  the same with LEDGER_SQLITE_STATEMENT_CACHE=0 (Kysely prepares every query again);
//   postgres  the same on a throwaway PostgreSQL 15 cluster (scripts/lib/postgres.ts).
// Metrics and tracing are off in all three (their cost is bench:observability's). Sequential calls,
// interleaved in rounds (none, sqlite, sqlite-uncached, postgres; again ...) so the machine's
// drift hits all three alike; CPU per call of every process is read from /proc around each block.
// Paths, each on its own postpaid instrument per stack (1-cent purchases):
//   b       the purchase Update with the Temporal client, a young instrument (window not full);
//   c       POST /instruments/:id/purchases through the API, a young instrument;
//   c-old   the same on an "old" instrument: its window of processed ids (processedIdLimit, shrunk to
//           BENCH_RECORD_WINDOW so the benchmark can fill it) is full, so every new purchase asks
//           the record whether its id is a forgotten one (a postpaid purchase in its own pay call,
//           before 2026-12-06 in a local activity of its own), and every window/10 purchases a batch
//           of counted rows is acknowledged (a scheduled activity);
//   retry   a retry (same key and body) of an old purchase beyond the window, answered from the
//           record (sqlite and postgres only: without a record it would be charged again).
// Then, in this process on each engine's database, the store calls those activities make:
// markCounted batches of 100 ids (the default window's batch) and single-row lookups.
//   BENCH_RECORD_ROUNDS (6) × BENCH_RECORD_PER_ROUND (25) calls per path and stack;
//   BENCH_RECORD_WARMUP (20) per path; BENCH_RECORD_WINDOW (200); BENCH_RECORD_ACK_BATCHES (20).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newId } from '../api/ids';
import { config } from '../config';
import { startPostgres, type PostgresCluster } from '../scripts/lib/postgres';
import { ensureTemporalCli, startDevServer, type DevServer } from '../scripts/temporal-cli';
import { openLedgerDb } from '../store/db';
import { LedgerStore } from '../store/ledger';
import { purchaseUpdate, workflowIdFor, type InstrumentInput } from '../workflows/messages';
import {
  distribution,
  log,
  machine,
  percentile,
  pool,
  printTargets,
  resultsDir,
  round,
  setting,
  SMOKE,
  table,
  target,
  writeResult,
  type BenchResult,
  type Distribution,
} from './lib/common';
import { approve, snapshot, startInstrumentDirect, waitUntilReady } from './lib/instruments';
import { cpuMs, machineBusyMs } from './lib/processes';
import { startStack, type Stack } from './lib/stack';

const name = 'record-cost';

const VARIANTS = ['none', 'sqlite', 'sqlite-uncached', 'postgres'] as const;
type Variant = (typeof VARIANTS)[number];
const PATHS = ['b', 'c', 'c-old', 'retry'] as const;
type PathName = (typeof PATHS)[number];
const PROCESSES = ['worker', 'api', 'sandbox', 'temporal', 'postgres', 'bench'] as const;
type ProcessName = (typeof PROCESSES)[number];

const LABELS: Record<PathName, string> = {
  b: '(b) purchase Update, young instrument',
  c: '(c) API purchase, young instrument',
  'c-old': '(c) API purchase, window full (record asked + acks)',
  retry: 'retry of an old purchase (answered from the record)',
};

/**
 * CPU ms of a process tree now (PostgreSQL: the postmaster and every backend): each process's own
 * time plus that of its children that ended (cutime/cstime), so backends that come and go between
 * two readings still count.
 */
function treeCpuMs(pid: number): number {
  let total = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total = ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / 100;
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean))
      total += treeCpuMs(Number(child));
  } catch {
    // gone, or not Linux
  }
  return total;
}

interface StackUnderTest {
  variant: Variant;
  stack: Stack;
  young: { b: string; c: string };
  old: string;
  /** Keys and original transaction ids of the old instrument's first purchases (retried once each). */
  oldPurchases: Array<{ key: string; transactionId: string }>;
}

async function postpaid(stack: Stack, customerId: string, settings?: InstrumentInput['settings']): Promise<string> {
  const input: InstrumentInput = {
    instrumentId: newId('ins'),
    customerId,
    type: 'postpaid',
    currency: 'USD',
    creditLimit: 10_000_000,
    globalAmountLimit: 100_000_000,
    description: 'record-cost benchmark',
    settings,
  };
  await approve(stack, await startInstrumentDirect(stack, input));
  return input.instrumentId;
}

async function apiPurchase(stack: Stack, instrumentId: string, key: string): Promise<string> {
  const r = await stack.api.request(
    'POST',
    `/instruments/${instrumentId}/purchases`,
    '{"amount":"0.01","currency":"USD"}',
    {
      'idempotency-key': key,
    },
  );
  if (r.status !== 201) throw new Error(`POST purchases: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return String((JSON.parse(r.text) as { transactionId?: string }).transactionId);
}

async function run(): Promise<BenchResult> {
  const rounds = setting('BENCH_RECORD_ROUNDS', 6, 1, { min: 1, max: 100 });
  const perRound = setting('BENCH_RECORD_PER_ROUND', 25, 3, { min: 1, max: 1_000 });
  const warmup = setting('BENCH_RECORD_WARMUP', 20, 2);
  const window = setting('BENCH_RECORD_WINDOW', 200, 20, { min: 10, max: 3_000 });
  const ackBatches = setting('BENCH_RECORD_ACK_BATCHES', 20, 2, { min: 1, max: 1_000 });
  const retries = rounds * perRound;
  // The old instrument continues-as-new often, so its first purchases' Updates are in earlier runs:
  // Temporal itself answers a repeated Update id only within one run, so the retries reach the
  // workflow, which asks the record.
  const canEvents = setting('BENCH_RECORD_CAN_EVENTS', 1_000, 120, { min: 100 });
  const batch = Math.min(100, Math.floor(window / 10));
  // Enough old purchases that every retry finds a distinct one beyond the window, acknowledged.
  const oldFill = window + 3 * batch + retries + warmup;

  const cfg = config();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fps-bench-record-cost-'));
  let server: DevServer | undefined;
  let pg: PostgresCluster | undefined;
  const under: StackUnderTest[] = [];
  try {
    const cli = await ensureTemporalCli();
    server = await startDevServer({
      cliPath: cli,
      headless: true,
      dbFile: path.join(tmp, 'temporal.sqlite'),
      namespace: cfg.temporal.namespace,
      logFile: path.join(resultsDir(), 'logs', `${name}-temporal.log`),
    });
    pg = await startPostgres();
    const ledgerUrls: Record<Variant, string | undefined> = {
      none: undefined,
      sqlite: `sqlite:${path.join(tmp, 'ledger.sqlite')}`,
      'sqlite-uncached': `sqlite:${path.join(tmp, 'ledger-uncached.sqlite')}`,
      postgres: await pg.createDatabase('ledger_bench'),
    };
    const off = { METRICS_ENABLED: 'false' };
    // The SQLite statement cache's own cost or gain (store/db.ts): the same stack preparing every query.
    const uncached = { ...off, LEDGER_SQLITE_STATEMENT_CACHE: '0' };
    for (const variant of VARIANTS) {
      const env = variant === 'sqlite-uncached' ? uncached : off;
      const stack = await startStack({
        label: `${name}-${variant}`,
        temporalAddress: server.address,
        ledgerUrl: ledgerUrls[variant] ?? `sqlite:${path.join(tmp, 'unused.sqlite')}`,
        workerScript: variant === 'none' ? 'bench/lib/no-record/worker.ts' : undefined,
        apiScript: variant === 'none' ? 'bench/lib/no-record/api.ts' : undefined,
        workerEnv: env,
        apiEnv: env,
      });
      under.push({ variant, stack, young: { b: '', c: '' }, old: '', oldPurchases: [] });
    }
    log(`${name}: instruments, and ${oldFill} purchases on each old one (window ${window}, acknowledged by ${batch})`);
    await Promise.all(
      under.map(async (u) => {
        const [b, c, old] = await Promise.all([
          postpaid(u.stack, `bench-record-${u.variant}-b`),
          postpaid(u.stack, `bench-record-${u.variant}-c`),
          postpaid(u.stack, `bench-record-${u.variant}-old`, {
            processedIdLimit: window,
            continueAsNewAfterEvents: canEvents,
          }),
        ]);
        await waitUntilReady(u.stack, [b, c, old], 60_000);
        u.young = { b, c };
        u.old = old;
        const answers: Array<{ key: string; transactionId: string }> = [];
        // Two clients: the workflow serializes them anyway; order of keys is the order answered.
        await pool(oldFill, 2, async () => {
          const key = randomUUID();
          const transactionId = await apiPurchase(u.stack, old, key);
          answers.push({ key, transactionId });
        });
        u.oldPurchases = answers.slice(0, oldFill - window - 2 * batch).sort(() => Math.random() - 0.5);
      }),
    );

    let seq = 0;
    const run = Date.now().toString(36);
    const call = (u: StackUnderTest, p: PathName): (() => Promise<void>) | undefined => {
      switch (p) {
        case 'b': {
          const purchaseId = `b-${run}-${seq++}`;
          const handle = u.stack.client.workflow.getHandle(workflowIdFor(u.young.b));
          return async () => {
            const r = await handle.executeUpdate(purchaseUpdate, {
              args: [{ purchaseId, amount: 1, currency: 'USD' }],
              updateId: purchaseId,
            });
            if (r.outcome !== 'approved') throw new Error(`purchase Update: ${JSON.stringify(r)}`);
          };
        }
        case 'c': {
          const key = `c-${run}-${seq++}`;
          return async () => void (await apiPurchase(u.stack, u.young.c, key));
        }
        case 'c-old': {
          const key = randomUUID();
          return async () => void (await apiPurchase(u.stack, u.old, key));
        }
        case 'retry': {
          if (u.variant === 'none') return undefined;
          const original = u.oldPurchases.pop();
          if (!original) return undefined;
          return async () => {
            const transactionId = await apiPurchase(u.stack, u.old, original.key);
            if (transactionId !== original.transactionId)
              throw new Error(`retry answered ${transactionId}, not its original ${original.transactionId}`);
          };
        }
      }
    };

    log(`${name}: warm-up, ${warmup} of each path on each stack`);
    for (const u of under)
      for (const p of PATHS.filter((q) => q !== 'retry')) for (let i = 0; i < warmup; i++) await call(u, p)!();

    const times = new Map<string, number[]>();
    const roundP50 = new Map<string, number[]>();
    const cpu = new Map<string, Record<ProcessName, number>>();
    const keyOf = (v: Variant, p: PathName) => `${v}/${p}`;
    const pgPid = pg.pid!;
    const temporalPid = server.pid;
    const readCpu = (u: StackUnderTest): Record<ProcessName, number> => ({
      worker: cpuMs(u.stack.pids.worker),
      api: cpuMs(u.stack.pids.api),
      sandbox: cpuMs(u.stack.pids.sandbox),
      temporal: cpuMs(temporalPid),
      postgres: treeCpuMs(pgPid),
      bench: cpuMs(process.pid),
    });
    const machine0 = machineBusyMs();
    let oursMs = 0;
    const t0 = performance.now();
    log(`${name}: ${rounds} rounds × ${perRound} of each path on each stack, interleaved`);
    for (let r = 0; r < rounds; r++) {
      for (const u of under) {
        for (const p of PATHS) {
          const block: number[] = [];
          const before = readCpu(u);
          for (let i = 0; i < perRound; i++) {
            const fn = call(u, p);
            if (!fn) break;
            const started = performance.now();
            await fn();
            block.push(performance.now() - started);
          }
          if (block.length === 0) continue;
          const after = readCpu(u);
          const k = keyOf(u.variant, p);
          const acc = cpu.get(k) ?? { worker: 0, api: 0, sandbox: 0, temporal: 0, postgres: 0, bench: 0 };
          for (const proc of PROCESSES) {
            acc[proc] += after[proc] - before[proc];
            oursMs += after[proc] - before[proc];
          }
          cpu.set(k, acc);
          times.set(k, [...(times.get(k) ?? []), ...block]);
          roundP50.set(k, [
            ...(roundP50.get(k) ?? []),
            percentile(
              [...block].sort((a, b) => a - b),
              50,
            ),
          ]);
        }
      }
    }
    const wallMs = performance.now() - t0;
    const otherLoadPercent = round(
      (100 * Math.max(0, machineBusyMs() - machine0 - oursMs)) / (wallMs * machine().nproc),
      1,
    );

    // Nothing moved twice: each old instrument's approved count is its purchases, retries not counted.
    const approvedOld: Record<
      string,
      { approved: number; expected: number; continueAsNew: number; answeredFromRecord: number }
    > = {};
    for (const u of under) {
      const s = await snapshot(u.stack, u.old);
      approvedOld[u.variant] = {
        approved: s.purchasesApproved,
        expected: oldFill + warmup + (times.get(keyOf(u.variant, 'c-old'))?.length ?? 0),
        continueAsNew: s.continueAsNewCount,
        // The workflow logs each operation it answers from the record (the worker's log, LOG_LEVEL=info).
        answeredFromRecord: u.stack.processes.worker.output().split('operation answered from the record').length - 1,
      };
    }

    // The store calls behind the two activities, in this process, on each engine's database.
    const storeCalls: Record<string, { markCounted100: Distribution; lookup: Distribution }> = {};
    for (const variant of ['sqlite', 'postgres'] as const) {
      const store = new LedgerStore(await openLedgerDb(ledgerUrls[variant]!));
      try {
        const instrumentId = newId('ins');
        const ids = Array.from({ length: ackBatches * 100 }, (_, i) => `ack-${i}`);
        await pool(ids.length, 4, async (i) => {
          await store.recordOperation({
            caller_reference: `${instrumentId}:purchase:${ids[i]}`,
            instrument_id: instrumentId,
            customer_id: 'bench-record-ack',
            instrument_type: 'postpaid',
            operation: 'purchase',
            operation_id: ids[i],
            amount: 1,
            currency: 'USD',
            status: 'Success',
            transaction_id: `tx-${ids[i]}`,
            decline_code: null,
            decline_reason: null,
            parent_operation_id: null,
            description: null,
            opened_by: null,
          });
        });
        const ack: number[] = [];
        for (let b = 0; b < ackBatches; b++) {
          const operations = ids
            .slice(b * 100, (b + 1) * 100)
            .map((operationId) => ({ operation: 'purchase', operationId }));
          const started = performance.now();
          const marked = await store.markCounted(instrumentId, operations);
          ack.push(performance.now() - started);
          if (marked !== 100) throw new Error(`markCounted marked ${marked} of 100`);
        }
        const lookups: number[] = [];
        for (let i = 0; i < ackBatches * 25; i++) {
          const started = performance.now();
          const row = await store.operation(instrumentId, 'purchase', ids[(i * 37) % ids.length]);
          lookups.push(performance.now() - started);
          if (!row) throw new Error('lookup found nothing');
        }
        storeCalls[variant] = { markCounted100: distribution(ack), lookup: distribution(lookups) };
      } finally {
        await store.close();
      }
    }

    // ---- report ----------------------------------------------------------------------------------
    const d = (v: Variant, p: PathName) => (times.has(keyOf(v, p)) ? distribution(times.get(keyOf(v, p))!) : undefined);
    const cpuPer = (v: Variant, p: PathName) => {
      const acc = cpu.get(keyOf(v, p));
      const n = times.get(keyOf(v, p))?.length ?? 0;
      if (!acc || n === 0) return undefined;
      const per = Object.fromEntries(PROCESSES.map((proc) => [proc, round(acc[proc] / n, 2)])) as Record<
        ProcessName,
        number
      >;
      return { ...per, total: round(PROCESSES.reduce((s, proc) => s + acc[proc], 0) / n, 2) };
    };
    const rows: Array<Array<string | number | undefined>> = [
      [
        'path',
        'stack',
        'n',
        'p50 ms',
        'p99 ms',
        'Δp50 vs none',
        'p50/none',
        'round Δp50 min…max',
        'CPU ms/call (worker api sandbox temporal pg bench = total)',
      ],
    ];
    const results: Record<string, unknown> = {};
    for (const p of PATHS) {
      for (const v of VARIANTS) {
        const dist = d(v, p);
        if (!dist) continue;
        const base = p === 'retry' ? undefined : d('none', p);
        const perRoundBase = roundP50.get(keyOf('none', p));
        const perRoundDelta = perRoundBase
          ? roundP50.get(keyOf(v, p))!.map((x, i) => round(x - perRoundBase[i], 2))
          : undefined;
        const c = cpuPer(v, p)!;
        rows.push([
          LABELS[p],
          v,
          dist.n,
          dist.p50,
          dist.p99,
          base && v !== 'none' ? `${dist.p50 - base.p50 >= 0 ? '+' : ''}${round(dist.p50 - base.p50, 2)}` : '',
          base && v !== 'none' ? round(dist.p50 / base.p50, 3) : '',
          perRoundDelta && v !== 'none' ? `${Math.min(...perRoundDelta)}…${Math.max(...perRoundDelta)}` : '',
          `${PROCESSES.map((proc) => c[proc]).join(' ')} = ${c.total}`,
        ]);
        results[keyOf(v, p)] = {
          latencyMs: dist,
          deltaP50VsNoneMs: base ? round(dist.p50 - base.p50, 2) : null,
          p50VsNone: base ? round(dist.p50 / base.p50, 3) : null,
          perRoundDeltaP50Ms: perRoundDelta ?? null,
          cpuMsPerCall: c,
        };
      }
    }
    console.log(table(rows));
    console.log(
      table([
        ['store call (this process)', 'engine', 'n', 'p50 ms', 'p99 ms', 'mean ms'],
        ...(['sqlite', 'postgres'] as const).flatMap((v) => [
          [
            'markCounted, 100 ids',
            v,
            storeCalls[v].markCounted100.n,
            storeCalls[v].markCounted100.p50,
            storeCalls[v].markCounted100.p99,
            storeCalls[v].markCounted100.mean,
          ],
          [
            'operation lookup, 1 row',
            v,
            storeCalls[v].lookup.n,
            storeCalls[v].lookup.p50,
            storeCalls[v].lookup.p99,
            storeCalls[v].lookup.mean,
          ],
        ]),
      ]),
    );
    console.log(
      `old instruments, purchases approved (fill + warm-up + c-old, retries not counted): ${JSON.stringify(approvedOld)}`,
    );
    console.log(`other load on the machine while measuring: ${otherLoadPercent} % of all CPUs`);
    return {
      benchmark: name,
      at: new Date().toISOString(),
      smoke: SMOKE,
      machine: machine(cli),
      settings: {
        rounds,
        perRound,
        warmup,
        window,
        ackBatch: batch,
        oldFill,
        ackBatches,
        metrics: 'off',
        logLevel: under[0].stack.logLevel,
      },
      results: { otherLoadPercent, paths: results, storeCalls, approvedOld },
      targets: [
        ...Object.entries(approvedOld).map(([v, a]) =>
          target(
            `${v}: old instrument counts each purchase once (retries move nothing)`,
            `${a.expected}`,
            a.approved,
            a.approved === a.expected,
          ),
        ),
        ...(['sqlite', 'postgres'] as const).map((v) =>
          target(
            `${v}: every retry answered by the workflow from the record`,
            `≥ ${times.get(keyOf(v, 'retry'))?.length ?? 0}`,
            approvedOld[v].answeredFromRecord,
            approvedOld[v].answeredFromRecord >= (times.get(keyOf(v, 'retry'))?.length ?? 0),
          ),
        ),
      ],
    };
  } finally {
    for (const u of under.reverse()) await u.stack.stop().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

run().then(
  (result) => {
    printTargets(result.targets);
    log(`${name}: written to ${writeResult(result)}`);
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
