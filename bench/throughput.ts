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
import { CpuMeter, cpuProfiles, memory } from './lib/processes';
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
async function load(
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
        const instrumentId = ids[k % ids.length];
        const t0 = performance.now();
        let status: string;
        try {
          const r = await stack.api.request(
            'POST',
            `/instruments/${instrumentId}/purchases`,
            '{"amount":"0.01","currency":"USD"}',
            { 'idempotency-key': `${tag}-${k}` },
          );
          status = String(r.status);
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
  } finally {
    await stack.stop();
  }
  printLoad(measured);

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
    ],
  };
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
