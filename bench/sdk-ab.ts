// `npm run bench:sdk-ab` (issue 16, report only): what two pieces of the Temporal TypeScript SDK's
// workflow sandbox cost on the purchase path, measured with a locally patched SDK (never shipped).
// Four stacks (sandbox, worker, API processes) on ONE Temporal dev server:
//   product       the product's worker/main.ts, unpatched (A);
//   watchdog-off  the same worker with the vm `timeout` option dropped from every runInContext call
//                 in the SDK's workflow thread (no deadlock detector, so no watchdog thread per call);
//   stacks-off    the same with the SDK's promise hook never installed (no stack trace captured per
//                 promise created in workflow context; the SDK's own fallback when the hook is missing);
//   both-off      both patches.
// The B variants run bench/lib/sdk-ab/worker.ts (worker/main.ts behind a run-time patch of the
// workflow thread: bench/lib/sdk-ab/install.ts, thread-patch.js). Metrics and tracing off in all.
// Alternating rounds (product, watchdog-off, stacks-off, both-off; again ...), each variant per round:
//   seq   BENCH_SDK_SEQ (40) sequential purchase Updates (b) with the Temporal client, 1 cent each;
//   load  BENCH_SDK_LOAD_SECONDS (12) s of purchase Updates from BENCH_SDK_CLIENTS (24) clients, each
//         on its own instrument, with the worker's (and the server's) CPU from /proc around it.
// Then the proof that each patch acts: the thread's own counters (timeouts dropped, hook skipped,
// promises the hook saw per purchase),
// the `__stack_trace` query (refused when no hook), and the worker's thread count sampled every
// millisecond under load (a watchdog thread exists only during a timed call).
//   BENCH_SDK_ROUNDS (5); BENCH_SDK_WARMUP (30 Updates per stack); BENCH_SDK_VERIFY_SECONDS (3).
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newId } from '../api/ids';
import { config } from '../config';
import { ensureTemporalCli, startDevServer, type DevServer } from '../scripts/temporal-cli';
import { purchaseUpdate, workflowIdFor, type InstrumentInput } from '../workflows/messages';
import {
  distribution,
  log,
  machine,
  percentile,
  pool,
  resultsDir,
  round,
  setting,
  SMOKE,
  table,
  writeResult,
  type BenchResult,
  type Distribution,
} from './lib/common';
import { approve, startInstrumentDirect, waitUntilReady } from './lib/instruments';
import { cpuMs, machineBusyMs } from './lib/processes';
import { startStack, type Stack } from './lib/stack';

const name = 'sdk-ab';
const VARIANTS = ['product', 'watchdog-off', 'stacks-off', 'both-off'] as const;
type Variant = (typeof VARIANTS)[number];

interface ThreadCounts {
  variant: string;
  threadId: number;
  timedCalls: number;
  timeoutsDropped: number;
  untimedCalls: number;
  promiseHookSkipped: number;
  promisesCaptured: number;
}

interface Under {
  variant: Variant;
  stack: Stack;
  countsFile?: string;
  seqInstrument: string;
  loadInstruments: string[];
  seq: number[];
  roundSeqP50: number[];
  load: { purchases: number; wallMs: number; workerCpuMs: number; temporalCpuMs: number; perRound: number[] };
  purchases: number;
}

async function postpaid(stack: Stack, customerId: string): Promise<string> {
  const input: InstrumentInput = {
    instrumentId: newId('ins'),
    customerId,
    type: 'postpaid',
    currency: 'USD',
    creditLimit: 100_000_000,
    globalAmountLimit: 1_000_000_000,
    description: 'sdk-ab benchmark',
  };
  await approve(stack, await startInstrumentDirect(stack, input));
  return input.instrumentId;
}

let seq = 0;
const runTag = Date.now().toString(36);
async function purchase(u: Under, instrumentId: string): Promise<void> {
  const purchaseId = `ab-${runTag}-${seq++}`;
  const r = await u.stack.client.workflow.getHandle(workflowIdFor(instrumentId)).executeUpdate(purchaseUpdate, {
    args: [{ purchaseId, amount: 1, currency: 'USD' }],
    updateId: purchaseId,
  });
  if (r.outcome !== 'approved') throw new Error(`purchase Update: ${JSON.stringify(r)}`);
  u.purchases++;
}

/** Purchases from `clients` concurrent clients (one instrument each) for `seconds`. */
async function loadFor(u: Under, seconds: number): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    u.loadInstruments.map(async (id) => {
      while (performance.now() < deadline) {
        await purchase(u, id);
        n++;
      }
    }),
  );
  return n;
}

const readCounts = (u: Under): ThreadCounts | undefined => {
  if (!u.countsFile) return undefined;
  try {
    return JSON.parse(readFileSync(u.countsFile, 'utf8')) as ThreadCounts;
  } catch {
    return undefined;
  }
};

const threadCount = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return NaN;
  }
};

async function run(): Promise<BenchResult> {
  const rounds = setting('BENCH_SDK_ROUNDS', 5, 1, { min: 1, max: 50 });
  const seqPerRound = setting('BENCH_SDK_SEQ', 40, 5, { min: 1, max: 1_000 });
  const loadSeconds = setting('BENCH_SDK_LOAD_SECONDS', 12, 2, { min: 1, max: 120 });
  const clients = setting('BENCH_SDK_CLIENTS', 24, 4, { min: 1, max: 256 });
  const warmup = setting('BENCH_SDK_WARMUP', 30, 5);
  const verifySeconds = setting('BENCH_SDK_VERIFY_SECONDS', 3, 1, { min: 1, max: 30 });

  const cfg = config();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fps-bench-sdk-ab-'));
  let server: DevServer | undefined;
  const under: Under[] = [];
  try {
    const cli = await ensureTemporalCli();
    server = await startDevServer({
      cliPath: cli,
      headless: true,
      dbFile: path.join(tmp, 'temporal.sqlite'),
      namespace: cfg.temporal.namespace,
      logFile: path.join(resultsDir(), 'logs', `${name}-temporal.log`),
    });
    const off = { METRICS_ENABLED: 'false' };
    for (const variant of VARIANTS) {
      const countsFile = variant === 'product' ? undefined : path.join(tmp, `${variant}-counts.json`);
      const stack = await startStack({
        label: `${name}-${variant}`,
        temporalAddress: server.address,
        ledgerUrl: `sqlite:${path.join(tmp, `${variant}-ledger.sqlite`)}`,
        workerScript: variant === 'product' ? undefined : 'bench/lib/sdk-ab/worker.ts',
        workerEnv: countsFile ? { ...off, SDK_AB_VARIANT: variant, SDK_AB_COUNTS: countsFile } : off,
        apiEnv: off,
      });
      under.push({
        variant,
        stack,
        countsFile,
        seqInstrument: '',
        loadInstruments: [],
        seq: [],
        roundSeqP50: [],
        load: { purchases: 0, wallMs: 0, workerCpuMs: 0, temporalCpuMs: 0, perRound: [] },
        purchases: 0,
      });
    }
    log(`${name}: ${1 + clients} postpaid instruments per stack`);
    await Promise.all(
      under.map(async (u) => {
        const ids: string[] = new Array(1 + clients);
        await pool(ids.length, 8, async (i) => {
          ids[i] = await postpaid(u.stack, `bench-sdk-${u.variant}-${i}`);
        });
        await waitUntilReady(u.stack, ids, 120_000);
        u.seqInstrument = ids[0];
        u.loadInstruments = ids.slice(1);
      }),
    );
    log(`${name}: warm-up, ${warmup} sequential Updates and 1 s of load per stack`);
    for (const u of under) {
      for (let i = 0; i < warmup; i++) await purchase(u, u.seqInstrument);
      await loadFor(u, 1);
    }

    const allPids = [
      server.pid,
      process.pid,
      ...under.flatMap((u) => [u.stack.pids.worker, u.stack.pids.api, u.stack.pids.sandbox]),
    ];
    const oursNow = () => allPids.reduce((s, pid) => s + (cpuMs(pid) || 0), 0);
    const counts0 = new Map(under.map((u) => [u.variant, { counts: readCounts(u), purchases: u.purchases }]));
    const machine0 = machineBusyMs();
    const ours0 = oursNow();
    const t0 = performance.now();
    log(`${name}: ${rounds} rounds × (${seqPerRound} sequential + ${loadSeconds} s of load) per variant, alternating`);
    for (let r = 0; r < rounds; r++) {
      for (const u of under) {
        const block: number[] = [];
        for (let i = 0; i < seqPerRound; i++) {
          const started = performance.now();
          await purchase(u, u.seqInstrument);
          block.push(performance.now() - started);
        }
        u.seq.push(...block);
        u.roundSeqP50.push(
          percentile(
            block.sort((a, b) => a - b),
            50,
          ),
        );
        const [w0, s0, l0] = [cpuMs(u.stack.pids.worker), cpuMs(server.pid), performance.now()];
        const n = await loadFor(u, loadSeconds);
        const [w1, s1, l1] = [cpuMs(u.stack.pids.worker), cpuMs(server.pid), performance.now()];
        u.load.purchases += n;
        u.load.wallMs += l1 - l0;
        u.load.workerCpuMs += w1 - w0;
        u.load.temporalCpuMs += s1 - s0;
        u.load.perRound.push(round((w1 - w0) / n, 3));
      }
      log(`${name}: round ${r + 1}/${rounds} done`);
    }
    const wallMs = performance.now() - t0;
    const otherLoadPercent = round(
      (100 * Math.max(0, machineBusyMs() - machine0 - (oursNow() - ours0))) / (wallMs * machine().nproc),
      1,
    );

    // ---- proof that each patch acts ------------------------------------------------------------------
    const verify: Record<string, unknown> = {};
    for (const u of under) {
      const c0 = counts0.get(u.variant)!;
      const c1 = readCounts(u);
      const purchases = u.purchases - c0.purchases;
      let stackTraceQuery: string;
      try {
        const trace = await u.stack.client.workflow
          .getHandle(workflowIdFor(u.seqInstrument))
          .query<string>('__stack_trace');
        stackTraceQuery = `answered (${String(trace).split('\n').length} lines)`;
      } catch (err) {
        stackTraceQuery = `refused: ${(err as Error).message.slice(0, 80)}`;
      }
      // Thread count every ms under load: a watchdog thread lives only while a timed call runs.
      const samples: number[] = [];
      const sampler = setInterval(() => samples.push(threadCount(u.stack.pids.worker)), 1);
      await loadFor(u, verifySeconds);
      clearInterval(sampler);
      const idle = threadCount(u.stack.pids.worker);
      const base = Math.min(...samples);
      verify[u.variant] = {
        threadCounts: c1 && {
          timedCallsPerPurchase: round((c1.timedCalls - (c0.counts?.timedCalls ?? 0)) / purchases, 2),
          timeoutsDroppedPerPurchase: round((c1.timeoutsDropped - (c0.counts?.timeoutsDropped ?? 0)) / purchases, 2),
          untimedCallsPerPurchase: round((c1.untimedCalls - (c0.counts?.untimedCalls ?? 0)) / purchases, 2),
          promiseHookSkipped: c1.promiseHookSkipped,
          promisesCapturedPerPurchase: round((c1.promisesCaptured - (c0.counts?.promisesCaptured ?? 0)) / purchases, 2),
          threadId: c1.threadId,
        },
        stackTraceQuery,
        workerThreads: {
          idle,
          min: base,
          max: Math.max(...samples),
          samples: samples.length,
          samplesAboveMinPercent: round((100 * samples.filter((x) => x > base).length) / samples.length, 1),
        },
      };
    }

    // ---- report ----------------------------------------------------------------------------------
    const A = under[0];
    const dA = distribution(A.seq);
    const cpuA = A.load.workerCpuMs / A.load.purchases;
    const rows: Array<Array<string | number | undefined>> = [
      [
        'variant',
        'seq n',
        'p50 ms',
        'p99 ms',
        'p50/A',
        'p99/A',
        'round p50/A min…max',
        'load /s',
        'worker CPU ms/purchase',
        'CPU/A',
        'round CPU/A min…max',
        'server CPU ms/purchase',
      ],
    ];
    const results: Record<string, unknown> = {};
    for (const u of under) {
      const d: Distribution = distribution(u.seq);
      const cpu = u.load.workerCpuMs / u.load.purchases;
      const roundP50Ratio = u.roundSeqP50.map((x, i) => round(x / A.roundSeqP50[i], 3));
      const roundCpuRatio = u.load.perRound.map((x, i) => round(x / A.load.perRound[i], 3));
      const rate = round((1000 * u.load.purchases) / u.load.wallMs, 1);
      const isA = u === A;
      rows.push([
        u.variant,
        d.n,
        d.p50,
        d.p99,
        isA ? '' : round(d.p50 / dA.p50, 3),
        isA ? '' : round(d.p99 / dA.p99, 3),
        isA ? '' : `${Math.min(...roundP50Ratio)}…${Math.max(...roundP50Ratio)}`,
        rate,
        round(cpu, 3),
        isA ? '' : round(cpu / cpuA, 3),
        isA ? '' : `${Math.min(...roundCpuRatio)}…${Math.max(...roundCpuRatio)}`,
        round(u.load.temporalCpuMs / u.load.purchases, 3),
      ]);
      results[u.variant] = {
        sequentialMs: d,
        p50VsProduct: isA ? null : round(d.p50 / dA.p50, 3),
        p99VsProduct: isA ? null : round(d.p99 / dA.p99, 3),
        perRoundP50VsProduct: isA ? null : roundP50Ratio,
        load: {
          purchases: u.load.purchases,
          perSecond: rate,
          workerCpuMsPerPurchase: round(cpu, 3),
          workerCpuVsProduct: isA ? null : round(cpu / cpuA, 3),
          workerCpuMsSavedPerPurchase: isA ? null : round(cpuA - cpu, 3),
          perRoundWorkerCpuVsProduct: isA ? null : roundCpuRatio,
          temporalCpuMsPerPurchase: round(u.load.temporalCpuMs / u.load.purchases, 3),
        },
        verify: verify[u.variant],
      };
    }
    console.log(table(rows));
    console.log(
      table([
        [
          'variant',
          'timed calls/purchase',
          'timeouts dropped/purchase',
          'hook skipped',
          'promises captured/purchase',
          '__stack_trace',
          'threads min…max, % above min',
        ],
        ...under.map((u) => {
          const v = verify[u.variant] as {
            threadCounts?: {
              timedCallsPerPurchase: number;
              timeoutsDroppedPerPurchase: number;
              promiseHookSkipped: number;
              promisesCapturedPerPurchase: number;
            };
            stackTraceQuery: string;
            workerThreads: { min: number; max: number; samplesAboveMinPercent: number };
          };
          return [
            u.variant,
            v.threadCounts?.timedCallsPerPurchase ?? '(unpatched)',
            v.threadCounts?.timeoutsDroppedPerPurchase ?? '(unpatched)',
            v.threadCounts?.promiseHookSkipped ?? '(unpatched)',
            v.threadCounts?.promisesCapturedPerPurchase ?? '(unpatched)',
            v.stackTraceQuery.slice(0, 40),
            `${v.workerThreads.min}…${v.workerThreads.max}, ${v.workerThreads.samplesAboveMinPercent} %`,
          ];
        }),
      ]),
    );
    log(`${name}: other load on the machine during the rounds: ${otherLoadPercent} % of all CPUs`);
    return {
      benchmark: name,
      at: new Date().toISOString(),
      smoke: SMOKE,
      machine: machine(cli),
      settings: { rounds, seqPerRound, loadSeconds, clients, warmup, verifySeconds, metrics: false },
      results: { ...results, otherLoadPercent, wallSeconds: round(wallMs / 1000, 1) },
      targets: [],
      notes: [
        'Ratios are within this run (alternating rounds on one Temporal server); the machine drifts ±15 % between runs.',
        'B variants patch the SDK at run time inside the workflow thread only (bench/lib/sdk-ab/); node_modules untouched.',
      ],
    };
  } finally {
    for (const u of under.reverse()) await u.stack.stop().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

run().then(
  (result) => {
    log(`${name}: wrote ${writeResult(result)}`);
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
