// 2. Throughput: purchases/s through the API across many funded prepaid instruments with many
// concurrent clients (default 1,000 instruments, 64 clients, 60 s), with the latency distribution
// under load and the CPU each process spends per purchase (/proc). Target >= 300 purchases/s.
// Then, unless BENCH_PROFILE_SECONDS=0, the same load again on a fresh stack whose worker, API and
// sandbox run under `node --cpu-prof`, analyzed over the load window only: what dominates.
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  distribution,
  log,
  machine,
  pool,
  resultsDir,
  round,
  setting,
  SMOKE,
  table,
  target,
  type BenchResult,
  type Distribution,
} from './lib/common';
import { approve, createInstrument, waitUntilReady } from './lib/instruments';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { writeChart } from './lib/chart';
import { localActivityUpdate } from './lib/floor/workflows';
import { CpuMeter, cpuProfiles, memory, startProcess, waitFor } from './lib/processes';
import { analyzeProfile, monotonicMicros, type ThreadProfile } from './lib/profile';
import { startStack, type Stack } from './lib/stack';

export const name = 'throughput';

interface LoadResult {
  seconds: number;
  purchases: number;
  purchasesPerSecond: number;
  statuses: Record<string, number>;
  latencyMs: Distribution;
  /** CPU ms per purchase by process, and the machine's CPU use in the window (100 % = all cores busy). */
  cpuMsPerPurchase: Record<string, number>;
  cpuUtilizationPercent: number;
  /** CPU used by other processes on the machine in the window (100 % = all cores): should be ~0. */
  otherLoadPercent: number;
  /** Window in monotonic µs (for the profiles). */
  window: { from: number; to: number };
}

async function fundedInstruments(
  stack: Stack,
  count: number,
  concurrency: number,
): Promise<{ ids: string[]; seconds: number }> {
  const started = performance.now();
  const ids: string[] = new Array(count);
  await pool(count, concurrency, async (i) => {
    const { instrumentId, authorizationUrl } = await createInstrument(stack, `bench-tp-${i}`, {
      type: 'prepaid',
      fundingAmount: '100.00',
      currency: 'USD',
    });
    await approve(stack, authorizationUrl);
    ids[i] = instrumentId;
  });
  await waitUntilReady(stack, ids, 300_000);
  return { ids, seconds: round((performance.now() - started) / 1000, 1) };
}

/** `clients` loops, each POSTing purchases round-robin over the instruments, for `seconds`. */
function load(
  stack: Stack,
  ids: string[],
  clients: number,
  seconds: number,
  tag: string,
  measure: boolean,
): Promise<LoadResult> {
  const pids: Record<string, number> = {
    worker: stack.pids.worker,
    api: stack.pids.api,
    sandbox: stack.pids.sandbox,
    bench: process.pid,
  };
  if (stack.pids.temporal) pids.temporal = stack.pids.temporal;
  return drive(pids, clients, seconds, measure, async (k) => {
    const r = await stack.api.request(
      'POST',
      `/instruments/${ids[k % ids.length]}/purchases`,
      '{"amount":"0.01","currency":"USD"}',
      { 'idempotency-key': `${tag}-${k}` },
    );
    return String(r.status);
  });
}

/**
 * The load generator: `clients` loops, each sending operation k = 0, 1, 2, … (`send(k)` names the
 * outcome) for `seconds`, with the latency of each and the CPU of the given processes per operation.
 */
async function drive(
  pids: Record<string, number>,
  clients: number,
  seconds: number,
  measure: boolean,
  send: (k: number) => Promise<string>,
): Promise<LoadResult> {
  const meter = new CpuMeter(pids);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const maxPurchases = Math.ceil(seconds * 5_000);
  const from = monotonicMicros();
  meter.start();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline && next < maxPurchases) {
        const k = next++;
        const t0 = performance.now();
        let status: string;
        try {
          status = await send(k);
        } catch (err) {
          status = `error: ${(err as Error).message.slice(0, 80)}`;
        }
        if (measure) latencies.push(performance.now() - t0);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const to = monotonicMicros();
  const cpu = meter.read();
  const purchases = latencies.length || next;
  const cpuMsPerPurchase: Record<string, number> = {};
  let total = 0;
  for (const [proc, ms] of Object.entries(cpu.cpuMs)) {
    cpuMsPerPurchase[proc] = round(ms / purchases, 3);
    total += ms;
  }
  cpuMsPerPurchase.total = round(total / purchases, 3);
  return {
    seconds: round(elapsed),
    purchases,
    purchasesPerSecond: Math.round(purchases / elapsed),
    statuses,
    latencyMs: distribution(latencies),
    cpuMsPerPurchase,
    cpuUtilizationPercent: round((100 * total) / (cpu.wallMs * machine().nproc), 1),
    otherLoadPercent: round((100 * cpu.otherMs) / (cpu.wallMs * machine().nproc), 1),
    window: { from, to },
  };
}

export interface ProfileSummary {
  process: string;
  cpuMsPerPurchase: number;
  threads: ThreadProfile[];
}

export async function run(): Promise<BenchResult> {
  const instruments = setting('BENCH_THROUGHPUT_INSTRUMENTS', 1_000, 8, { min: 1, max: 20_000 });
  const clients = setting('BENCH_THROUGHPUT_CLIENTS', 64, 4, { min: 1, max: 1_024 });
  const seconds = setting('BENCH_THROUGHPUT_SECONDS', 60, 2, { min: 1, max: 600 });
  const warmupSeconds = setting('BENCH_THROUGHPUT_WARMUP_SECONDS', 10, 0, { max: 120 });
  const profileSeconds = setting('BENCH_PROFILE_SECONDS', 20, 0, { max: 120 });
  const createConcurrency = setting('BENCH_CREATE_CONCURRENCY', 32, 4, { min: 1, max: 256 });

  const stepSeconds = setting('BENCH_THROUGHPUT_STEP_SECONDS', 8, 1, { min: 1, max: 60 });
  const loadSteps = [1, 2, 4, 8, 16, 32].filter((c) => c < clients);
  const purchaseSteps: LoadPoint[] = [];
  const floorSteps: LoadPoint[] = [];
  let floorRun: LoadResult;

  // ---- measured run ----
  const stack = await startStack({ label: name });
  let measured: LoadResult;
  let setupSeconds: number;
  let memoryAfter: Record<string, unknown>;
  try {
    log(
      `${name}: creating and funding ${instruments} prepaid instruments through the API (${createConcurrency} at a time)`,
    );
    const funded = await fundedInstruments(stack, instruments, createConcurrency);
    setupSeconds = funded.seconds;
    log(`${name}: ${instruments} instruments active in ${setupSeconds} s; warm-up ${warmupSeconds} s`);
    if (warmupSeconds > 0) await load(stack, funded.ids, clients, warmupSeconds, 'warm', false);
    log(`${name}: ${clients} clients for ${seconds} s`);
    measured = await load(stack, funded.ids, clients, seconds, 'run', true);
    memoryAfter = {
      workerMiB: memory(stack.pids.worker),
      apiMiB: memory(stack.pids.api),
      sandboxMiB: memory(stack.pids.sandbox),
      temporalMiB: stack.pids.temporal ? memory(stack.pids.temporal) : null,
    };
    for (const c of loadSteps) {
      const step = await load(stack, funded.ids, c, stepSeconds, `step${c}`, true);
      purchaseSteps.push({ clients: c, ...stepPoint(step) });
      log(`${name}: purchases, ${c} clients: ${step.purchasesPerSecond}/s, p50 ${step.latencyMs.p50} ms`);
    }
    const floor = await floorLoad(
      stack,
      instruments,
      clients,
      seconds,
      warmupSeconds,
      loadSteps,
      stepSeconds,
      createConcurrency,
    );
    floorRun = floor.measured;
    floorSteps.push(...floor.steps);
  } finally {
    await stack.stop();
  }
  printLoad(measured);
  console.log(`\nThroughput floor (no-op-local-activity Updates across ${instruments} workflows, same clients):`);
  printLoad(floorRun);
  const chart = writeChart('throughput-latency-vs-load', {
    title: `Latency against load (${instruments} instruments; clients ${[...loadSteps, clients].join(', ')})`,
    xLabel: 'operations per second',
    yLabel: 'latency ms',
    series: [
      { name: 'purchase p50', points: curve(purchaseSteps, measured, 'p50') },
      { name: 'purchase p99', points: curve(purchaseSteps, measured, 'p99') },
      { name: 'floor Update p50', points: curve(floorSteps, floorRun, 'p50'), dashed: true },
      { name: 'floor Update p99', points: curve(floorSteps, floorRun, 'p99'), dashed: true },
    ],
  });
  log(`${name}: chart ${path.relative(process.cwd(), chart)}`);

  // ---- profiled run ----
  let profiles: ProfileSummary[] | undefined;
  let ranking: ReturnType<typeof costRanking> | undefined;
  let profiledLoad: LoadResult | undefined;
  if (profileSeconds > 0) {
    const dir = path.join(resultsDir(), 'profiles', name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const pstack = await startStack({ label: `${name}-profiled`, cpuProfileDir: dir });
    try {
      log(
        `${name}: profiling: ${instruments} instruments, ${clients} clients, ${profileSeconds} s under node --cpu-prof`,
      );
      const funded = await fundedInstruments(pstack, instruments, createConcurrency);
      if (warmupSeconds > 0) await load(pstack, funded.ids, clients, Math.min(5, warmupSeconds), 'warm', false);
      profiledLoad = await load(pstack, funded.ids, clients, profileSeconds, 'prof', true);
    } finally {
      // Graceful stops: each process writes its profiles on exit.
      await pstack.stop();
    }
    profiles = ['worker', 'api', 'sandbox'].map((proc) => ({
      process: proc,
      cpuMsPerPurchase: profiledLoad!.cpuMsPerPurchase[proc],
      threads: cpuProfiles(path.join(dir, proc))
        .map((file) => analyzeProfile(file, profiledLoad!.window.from, profiledLoad!.window.to))
        .filter((t) => t.windowMs > 0)
        .sort((a, b) => b.busyMs - a.busyMs),
    }));
    printProfiles(profiles, profiledLoad.purchases);
    ranking = costRanking(profiles, profiledLoad.cpuMsPerPurchase, profiledLoad.purchases);
    console.log('\nWhere a purchase goes (profiled run, ms per purchase):');
    console.log(table([['where', 'ms/purchase'], ...ranking.map((r) => [r.where.slice(0, 110), r.msPerPurchase])]));
    log(`${name}: profiles in ${path.relative(process.cwd(), dir)} (open in Chrome DevTools or speedscope)`);
  }

  return {
    benchmark: name,
    at: new Date().toISOString(),
    smoke: SMOKE,
    machine: machine(stack.temporalCli),
    settings: {
      instruments,
      clients,
      seconds,
      warmupSeconds,
      profileSeconds,
      amount: '0.01 USD',
      distribution: 'round-robin over the instruments (no two clients on one instrument at a time)',
      worker: stack.workerSettings,
      logLevel: stack.logLevel,
    },
    results: {
      setupSeconds,
      purchasesPerSecond: measured.purchasesPerSecond,
      purchases: measured.purchases,
      statuses: measured.statuses,
      latencyMs: measured.latencyMs,
      cpuMsPerPurchase: measured.cpuMsPerPurchase,
      cpuUtilizationPercent: measured.cpuUtilizationPercent,
      otherLoadPercent: measured.otherLoadPercent,
      memoryAfter,
      profiled: profiledLoad && {
        purchasesPerSecond: profiledLoad.purchasesPerSecond,
        purchases: profiledLoad.purchases,
        cpuMsPerPurchase: profiledLoad.cpuMsPerPurchase,
        otherLoadPercent: profiledLoad.otherLoadPercent,
        windowMonotonicMicros: profiledLoad.window,
      },
      floor: {
        what: `Update + no-op local activity (bench/lib/floor/workflows.ts) on ${instruments} workflows, its own worker process, the same ${clients} clients`,
        opsPerSecond: floorRun.purchasesPerSecond,
        operations: floorRun.purchases,
        statuses: floorRun.statuses,
        latencyMs: floorRun.latencyMs,
        cpuMsPerOperation: floorRun.cpuMsPerPurchase,
        otherLoadPercent: floorRun.otherLoadPercent,
        purchasesToFloor: round(measured.purchasesPerSecond / Math.max(1, floorRun.purchasesPerSecond), 3),
      },
      latencyAgainstLoad: { purchases: purchaseSteps, floor: floorSteps, chart: path.basename(chart) },
      costRanking: ranking,
      profiles,
    },
    targets: [
      target(
        'purchases/s through the API',
        '>= 300/s',
        `${measured.purchasesPerSecond}/s`,
        measured.purchasesPerSecond >= 300,
      ),
      target(
        'purchases/s against the throughput floor',
        '>= 0.9 x floor',
        `${measured.purchasesPerSecond}/s vs ${floorRun.purchasesPerSecond}/s = ${round(measured.purchasesPerSecond / Math.max(1, floorRun.purchasesPerSecond), 2)} x`,
        measured.purchasesPerSecond >= 0.9 * floorRun.purchasesPerSecond,
      ),
    ],
  };
}

interface LoadPoint {
  clients: number;
  perSecond: number;
  p50: number;
  p99: number;
}

const stepPoint = (r: LoadResult) => ({ perSecond: r.purchasesPerSecond, p50: r.latencyMs.p50, p99: r.latencyMs.p99 });

/** The chart's points: the load steps, then the measured run at full concurrency. */
const curve = (steps: LoadPoint[], full: LoadResult, q: 'p50' | 'p99'): Array<[number, number]> => [
  ...steps.map((p): [number, number] => [p.perSecond, p[q]]),
  [full.purchasesPerSecond, full.latencyMs[q]],
];

/**
 * The throughput floor on the same stack: the same load generator driving Updates that run one no-op
 * local activity (what a purchase is without the instrument's logic, the FPS call and the API) across
 * as many workflows as there are instruments, served by a worker process of its own with the
 * product's worker settings. Then the same load steps as the purchases.
 */
async function floorLoad(
  stack: Stack,
  workflows: number,
  clients: number,
  seconds: number,
  warmupSeconds: number,
  loadSteps: number[],
  stepSeconds: number,
  concurrency: number,
): Promise<{ measured: LoadResult; steps: LoadPoint[] }> {
  const taskQueue = `bench-floor-${randomUUID().slice(0, 8)}`;
  const worker = startProcess({
    name: 'floor-worker',
    script: 'bench/lib/floor/worker.ts',
    env: {
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
    },
    logFile: path.join(resultsDir(), 'logs', `${name}-floor-worker.log`),
  });
  try {
    await waitFor('floor worker', async () => worker.output().includes('floor worker started'), 120_000, worker);
    log(`${name}: floor: starting ${workflows} floor workflows`);
    const handles: WorkflowHandle[] = new Array(workflows);
    await pool(workflows, concurrency, async (i) => {
      handles[i] = await stack.client.workflow.start('floorWorkflow', {
        taskQueue,
        workflowId: `bench-floor-${taskQueue}-${i}`,
      });
    });
    const pids: Record<string, number> = { 'floor-worker': worker.pid, bench: process.pid };
    if (stack.pids.temporal) pids.temporal = stack.pids.temporal;
    const send = (offset: number) => async (k: number) => {
      const answer = await handles[(k + offset) % workflows].executeUpdate(localActivityUpdate, { args: [k] });
      return answer === k ? 'ok' : `wrong answer ${answer}`;
    };
    // Each workflow takes at most 2,000 Updates per run (Temporal's limit; the floor never
    // continues-as-new): the warm-up, the run and the steps stay far below that per workflow.
    if (warmupSeconds > 0) await drive(pids, clients, warmupSeconds, false, send(0));
    log(`${name}: floor: ${clients} clients for ${seconds} s`);
    const measured = await drive(pids, clients, seconds, true, send(0));
    const steps: LoadPoint[] = [];
    for (const c of loadSteps) {
      const step = await drive(pids, c, stepSeconds, true, send(c));
      steps.push({ clients: c, ...stepPoint(step) });
    }
    return { measured, steps };
  } finally {
    await worker.stop();
  }
}

function printLoad(r: LoadResult): void {
  console.log(
    table([
      ['purchases/s', 'purchases', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'statuses', 'CPU used', 'other load'],
      [
        r.purchasesPerSecond,
        r.purchases,
        r.latencyMs.p50,
        r.latencyMs.p95,
        r.latencyMs.p99,
        r.latencyMs.max,
        JSON.stringify(r.statuses),
        `${r.cpuUtilizationPercent} %`,
        `${r.otherLoadPercent} %`,
      ],
    ]),
  );
  console.log(
    table([
      ['CPU ms per purchase', ...Object.keys(r.cpuMsPerPurchase)],
      ['', ...Object.values(r.cpuMsPerPurchase)],
    ]),
  );
}

/**
 * Where a purchase's time goes across the stack: each profiled thread's components in ms per
 * purchase (sampled on-thread time, which includes waits inside native calls such as the workflow
 * sandbox's per-call watchdog), plus the processes that have no JS profile (the Temporal server)
 * and the native remainder of each Node process (Rust core, libuv and GC helper threads), from /proc.
 */
export function costRanking(
  profiles: ProfileSummary[],
  cpuMsPerPurchase: Record<string, number>,
  purchases: number,
  n = 15,
): Array<{ where: string; msPerPurchase: number }> {
  const rows: Array<{ where: string; msPerPurchase: number }> = [];
  for (const p of profiles) {
    let sampled = 0;
    for (const t of p.threads) {
      const thread = threadName(p.process, t);
      sampled += t.busyMs / purchases;
      for (const c of t.components)
        rows.push({ where: `${p.process} ${thread}: ${c.name}`, msPerPurchase: round(c.ms / purchases, 3) });
    }
    const rest = (cpuMsPerPurchase[p.process] ?? 0) - sampled;
    if (rest > 0)
      rows.push({
        where: `${p.process}: native threads (not in the JS profile; /proc CPU minus sampled JS time)`,
        msPerPurchase: round(rest, 3),
      });
  }
  if (cpuMsPerPurchase.temporal !== undefined)
    rows.push({ where: 'Temporal server (Go; /proc CPU, not profiled)', msPerPurchase: cpuMsPerPurchase.temporal });
  if (cpuMsPerPurchase.bench !== undefined)
    rows.push({ where: 'load generator (this process)', msPerPurchase: cpuMsPerPurchase.bench });
  return rows.sort((a, b) => b.msPerPurchase - a.msPerPurchase).slice(0, n);
}

const threadName = (proc: string, t: ThreadProfile) =>
  t.threadId === 0 ? 'main thread' : proc === 'worker' ? `workflow thread ${t.threadId}` : `thread ${t.threadId}`;

function printProfiles(profiles: ProfileSummary[], purchases: number): void {
  for (const p of profiles) {
    for (const t of p.threads.filter((x) => x.busyMs > 0)) {
      console.log(
        `\n${p.process} ${threadName(p.process, t)} (${t.file}): ${round(t.busyMs / purchases, 3)} ms sampled per purchase (${t.busyMs} of ${t.windowMs} ms)`,
      );
      console.log(
        table([['component', '% of thread'], ...t.components.slice(0, 8).map((c) => [c.name.slice(0, 90), c.percent])]),
      );
      console.log(
        table([
          ['self time: function', '% of thread'],
          ...t.functions.slice(0, 8).map((c) => [c.name.slice(0, 90), c.percent]),
        ]),
      );
      if (t.projectInclusive.length)
        console.log(
          table([
            ['our code that caused it', '% of thread'],
            ...t.projectInclusive.slice(0, 6).map((c) => [c.name.slice(0, 90), c.percent]),
          ]),
        );
    }
  }
}
