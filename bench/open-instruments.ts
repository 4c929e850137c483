// 4. Open instruments: BENCH_OPEN_INSTRUMENTS (default 100,000) postpaid instruments created through
// the API and authorized at the sandbox CBUI, then left idle — each workflow open and waiting on its
// settlement-cycle timer. Creation is paced so that at most BENCH_OPEN_BACKLOG (1,000) started
// instruments are not yet active: the Temporal dev server accepts starts and signals faster than it
// gives new workflows their first task, and the benchmark measures open idle instruments, not a
// queue of unstarted ones. Reports the time to start them, the RSS (VmRSS, /proc/<pid>/status) of the
// worker and of the Temporal server (and peaks, VmHWM), and the latency of a purchase on a random
// idle instrument afterwards (most are no longer in the worker's cache: the first task replays).
// Targets: worker RSS <= 1.5 GB; a purchase on a random idle instrument p99 <= 100 ms.
import {
  distribution,
  log,
  machine,
  pool,
  round,
  setting,
  sleep,
  SMOKE,
  table,
  target,
  type BenchResult,
} from './lib/common';
import { approve, countInState, createInstrument } from './lib/instruments';
import { CpuMeter, memory, type Memory } from './lib/processes';
import { startStack } from './lib/stack';

export const name = 'open-instruments';

const GB = 1024; // MiB

export async function run(): Promise<BenchResult> {
  const count = setting('BENCH_OPEN_INSTRUMENTS', 100_000, 20, { min: 1, max: 100_000 });
  const concurrency = setting('BENCH_CREATE_CONCURRENCY', 32, 4, { min: 1, max: 256 });
  const maxSeconds = setting('BENCH_OPEN_MAX_SECONDS', 5_400, 60, { min: 10 });
  // Idle before the probes: long enough that the server has activated every queued instrument (at 15 s the
  // 2026-12-04 sitting's p95 was the last activations, 393 ms; at 120 s, 66 ms).
  const idleSeconds = setting('BENCH_OPEN_IDLE_SECONDS', 120, 1);
  const probes = setting('BENCH_OPEN_PROBES', 200, 5);
  // At most this many started instruments not yet active: the dev server takes starts and signals
  // faster (~78/s here) than it hands new workflows their first task (~25/s), and a backlog of
  // tens of thousands of first tasks is not "open and idle". Creation waits for the server instead.
  const backlog = setting('BENCH_OPEN_BACKLOG', 1_000, 1_000, { min: 1 });
  // The worker's sticky cache as configured (TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS), unless BENCH_OPEN_CACHE says otherwise.
  const cache = process.env.BENCH_OPEN_CACHE;
  const stack = await startStack({
    label: name,
    workerEnv: cache ? { TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: cache } : undefined,
  });
  try {
    const ids: string[] = [];
    const customers = `bench-open-${Date.now().toString(36)}-`;
    const peaks = { worker: 0, temporal: 0 };
    const sampler = setInterval(() => {
      peaks.worker = Math.max(peaks.worker, memory(stack.pids.worker).rssMiB || 0);
      if (stack.pids.temporal) peaks.temporal = Math.max(peaks.temporal, memory(stack.pids.temporal).rssMiB || 0);
    }, 1_000);
    const before = {
      worker: memory(stack.pids.worker),
      temporal: stack.pids.temporal ? memory(stack.pids.temporal) : undefined,
    };
    log(
      `${name}: starting ${count} postpaid instruments through the API (create, CBUI approval, /fps/return), ${concurrency} at a time`,
    );
    const meter = new CpuMeter({
      worker: stack.pids.worker,
      api: stack.pids.api,
      sandbox: stack.pids.sandbox,
      bench: process.pid,
      ...(stack.pids.temporal ? { temporal: stack.pids.temporal } : {}),
    });
    meter.start();
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    let lastReport = started;
    // The active count (visibility), refreshed every second while instruments are being created.
    let activeSoFar = 0;
    let creating = true;
    const refresher = (async () => {
      while (creating) {
        activeSoFar = await countInState(stack, 'active', customers).catch(() => activeSoFar);
        await sleep(1_000);
      }
    })();
    let backlogWaitMs = 0;
    const created = await pool(
      count,
      concurrency,
      async (i) => {
        const waitFrom = performance.now();
        while (ids.length - activeSoFar >= backlog && performance.now() < deadline) await sleep(100);
        backlogWaitMs += performance.now() - waitFrom;
        const { instrumentId, authorizationUrl } = await createInstrument(stack, `${customers}${i}`, {
          type: 'postpaid',
          creditLimit: '100.00',
          globalAmountLimit: '1000.00',
          currency: 'USD',
        });
        await approve(stack, authorizationUrl);
        ids.push(instrumentId);
        if (performance.now() - lastReport > 30_000) {
          lastReport = performance.now();
          log(
            `${name}: ${ids.length} started (${activeSoFar} active), ${Math.round(ids.length / ((lastReport - started) / 1000))}/s, worker RSS ${memory(stack.pids.worker).rssMiB} MiB`,
          );
        }
      },
      deadline,
    );
    creating = false;
    await refresher;
    const startSeconds = (performance.now() - started) / 1000;
    // Authorized = the workflow processed the signal and published InstrumentState=active (visibility).
    let active = 0;
    // Its own bound: creation may have used up the deadline, and the last ones still need activating.
    const activeDeadline = performance.now() + 600_000;
    do {
      active = await countInState(stack, 'active', customers);
      if (active >= created) break;
      await sleep(500);
    } while (performance.now() < activeDeadline);
    const activeSeconds = (performance.now() - started) / 1000;
    const cpu = meter.read();
    log(
      `${name}: ${created} started in ${round(startSeconds, 1)} s, ${active} active after ${round(activeSeconds, 1)} s; idle ${idleSeconds} s`,
    );
    await sleep(idleSeconds * 1000);
    clearInterval(sampler);
    const idle: Record<string, Memory | undefined> = {
      worker: memory(stack.pids.worker),
      temporal: stack.pids.temporal ? memory(stack.pids.temporal) : undefined,
      api: memory(stack.pids.api),
      sandbox: memory(stack.pids.sandbox),
    };

    // A purchase on random idle instruments: most have left the worker's cache and are replayed first.
    const probeLatency: number[] = [];
    const statuses: Record<string, number> = {};
    await pool(Math.min(probes, ids.length), 1, async (i) => {
      const instrumentId = ids[Math.floor(Math.random() * ids.length)];
      const t0 = performance.now();
      const r = await stack.api.request(
        'POST',
        `/instruments/${instrumentId}/purchases`,
        '{"amount":"0.01","currency":"USD"}',
        { 'idempotency-key': `probe-${i}` },
      );
      probeLatency.push(performance.now() - t0);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    });
    const probe = distribution(probeLatency);
    const after = {
      worker: memory(stack.pids.worker),
      temporal: stack.pids.temporal ? memory(stack.pids.temporal) : undefined,
    };

    const perInstrumentKiB = round(((idle.worker!.rssMiB - before.worker.rssMiB) * 1024) / Math.max(1, created), 1);
    console.log(
      table([
        [
          'instruments',
          'start s',
          'per s',
          'all active s',
          'worker RSS MiB',
          'worker peak MiB',
          'server RSS MiB',
          'server peak MiB',
          'API RSS MiB',
          'sandbox RSS MiB',
        ],
        [
          created,
          round(startSeconds, 1),
          Math.round(created / startSeconds),
          round(activeSeconds, 1),
          idle.worker!.rssMiB,
          idle.worker!.peakMiB,
          idle.temporal?.rssMiB ?? 'external',
          idle.temporal?.peakMiB ?? 'external',
          idle.api!.rssMiB,
          idle.sandbox!.rssMiB,
        ],
      ]),
    );
    console.log(
      table([
        ['purchase on a random idle instrument', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'statuses'],
        ['', probe.n, probe.p50, probe.p95, probe.p99, probe.max, JSON.stringify(statuses)],
      ]),
    );
    return {
      benchmark: name,
      at: new Date().toISOString(),
      smoke: SMOKE,
      machine: machine(stack.temporalCli),
      settings: {
        instruments: count,
        type: 'postpaid (30-day settlement timer)',
        createConcurrency: concurrency,
        maxNotYetActive: backlog,
        idleSeconds,
        probes,
        worker: stack.workerSettings,
        logLevel: stack.logLevel,
      },
      results: {
        created,
        active,
        startSeconds: round(startSeconds, 1),
        startedPerSecond: Math.round(created / startSeconds),
        // Mean time a creating client spent waiting for the server to activate earlier instruments.
        backlogWaitSeconds: round(backlogWaitMs / 1000 / concurrency, 1),
        allActiveSeconds: round(activeSeconds, 1),
        cpuMsPerInstrument: Object.fromEntries(
          Object.entries(cpu.cpuMs).map(([k, v]) => [k, round(v / Math.max(1, created), 2)]),
        ),
        otherLoadPercent: round((100 * cpu.otherMs) / (cpu.wallMs * machine().nproc), 1),
        memoryMiB: { before, idle, afterProbes: after, sampledPeaks: peaks },
        workerRssGrowthPerInstrumentKiB: perInstrumentKiB,
        idlePurchaseLatencyMs: probe,
        idlePurchaseStatuses: statuses,
      },
      targets: [
        target(
          `worker RSS with ${created} open instruments`,
          '<= 1.5 GB',
          `${idle.worker!.rssMiB} MiB (peak ${idle.worker!.peakMiB})`,
          created === count && idle.worker!.peakMiB <= 1.5 * GB,
        ),
        target('every instrument authorized and waiting', `${count}`, `${active}`, active === count),
        target(
          'a purchase on a random idle instrument, p99',
          '<= 100 ms',
          `${probe.p99} ms (p50 ${probe.p50} ms, ${JSON.stringify(statuses)})`,
          probe.p99 <= 100 && (statuses[201] ?? 0) === probe.n,
        ),
        target(
          `Temporal server RSS with ${created} open instruments`,
          'reported',
          idle.temporal ? `${idle.temporal.rssMiB} MiB (peak ${idle.temporal.peakMiB})` : 'external server',
          true,
        ),
      ],
    };
  } finally {
    await stack.stop();
  }
}
