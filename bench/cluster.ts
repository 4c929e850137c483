// `npm run bench:cluster`: the production topology (scripts/lib/cluster.ts: Temporal server on
// PostgreSQL, two workers, two API processes) against the dev-server stack (bench/lib/stack.ts:
// `temporal server start-dev` on SQLite, one worker, one API), in the same run on the same machine:
//   1. purchases/s and p50/p99 latency, closed-loop clients: dev stack; cluster with one worker;
//      cluster with two workers (clients spread over both API processes);
//   2. kill -9 of one of two workers under that load: the latency spike and the time to recover;
//   3. Temporal server RSS and PostgreSQL size per 10,000 instruments (measured on fewer, scaled).
// Sizes (env): BENCH_CLUSTER_INSTRUMENTS (300), BENCH_CLUSTER_CLIENTS (24), BENCH_CLUSTER_SECONDS (30),
// BENCH_CLUSTER_SIZE_INSTRUMENTS (1000). Writes bench/results/cluster.json; figures in bench/RESULTS.md.
import pg from 'pg';
import { formatDecimal } from '../fps/money';
import { startCluster, type Cluster } from '../scripts/lib/cluster';
import {
  distribution,
  log,
  machine,
  pool,
  round,
  setting,
  sleep,
  table,
  writeResult,
  type Distribution,
} from './lib/common';
import { HttpClient } from './lib/http';
import { approve, createInstrument, waitUntilReady } from './lib/instruments';
import { memory } from './lib/processes';
import { startStack, type Stack } from './lib/stack';
import { Client, Connection } from '@temporalio/client';

export const name = 'cluster';

const INSTRUMENTS = setting('BENCH_CLUSTER_INSTRUMENTS', 300, 20);
const CLIENTS = setting('BENCH_CLUSTER_CLIENTS', 24, 4);
const SECONDS = setting('BENCH_CLUSTER_SECONDS', 30, 5);
const SIZE_INSTRUMENTS = setting('BENCH_CLUSTER_SIZE_INSTRUMENTS', 1000, 20);
const WARMUP_SECONDS = 5;

interface Sample {
  /** ms since the load started, when the purchase was sent */
  at: number;
  ms: number;
  ok: boolean;
}

interface LoadResult {
  seconds: number;
  purchases: number;
  purchasesPerSecond: number;
  errors: number;
  retries: number;
  /** Non-201 answers by HTTP status (a 5xx is retried, anything else ends that purchase). */
  statuses: Record<number, number>;
  latencyMs: Distribution;
  samples: Sample[];
}

/** The bench helpers need a Stack; the cluster's first API process is one. */
function stackView(cluster: Cluster, client: Client): Stack {
  return {
    label: 'cluster',
    apiUrl: cluster.apiUrls[0],
    sandboxUrl: cluster.sandboxUrl,
    apiKey: cluster.apiKey,
    taskQueue: cluster.taskQueue,
    namespace: cluster.namespace,
    temporalAddress: cluster.address,
    client,
    api: new HttpClient(cluster.apiUrls[0], { 'x-api-key': cluster.apiKey }),
    sandboxHttp: new HttpClient(cluster.sandboxUrl),
  } as unknown as Stack;
}

async function fundedInstruments(stack: Stack, count: number, tag: string): Promise<string[]> {
  const started = performance.now();
  const ids: string[] = new Array(count);
  await pool(count, 12, async (i) => {
    const { instrumentId, authorizationUrl } = await createInstrument(stack, `bench-${tag}-${i}`, {
      type: 'prepaid',
      fundingAmount: '100.00',
      currency: 'USD',
    });
    await approve(stack, authorizationUrl);
    ids[i] = instrumentId;
  });
  await waitUntilReady(stack, ids, 600_000);
  log(`${tag}: ${count} instruments funded in ${round((performance.now() - started) / 1000, 1)} s`);
  return ids;
}

let purchaseSeq = 0;

/**
 * `clients` closed loops for `seconds`, client i on API i mod n; a transport error or 5xx is retried
 * on the next API with the same Idempotency-Key. `during` runs beside the load (e.g. a kill).
 */
async function load(
  apis: HttpClient[],
  ids: string[],
  seconds: number,
  during?: (startedAt: number) => Promise<void>,
): Promise<LoadResult> {
  const samples: Sample[] = [];
  let retries = 0;
  let errors = 0;
  const statuses: Record<number, number> = {};
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  const clientLoop = async (client: number) => {
    let n = client;
    while (performance.now() < stopAt) {
      const instrumentId = ids[(n += CLIENTS) % ids.length];
      // $0.10–$0.90: round cents, never the sandbox's magic .13/.14/.51/.52.
      const key = `bench-cl-${process.pid}-${purchaseSeq++}`;
      const body = JSON.stringify({ amount: formatDecimal(10 * (1 + (n % 9)), 'USD'), currency: 'USD' });
      const sent = performance.now();
      let ok = false;
      for (let attempt = 0; attempt < 20 && !ok; attempt++) {
        const api = apis[(client + attempt) % apis.length];
        try {
          const answer = await api.request('POST', `/instruments/${instrumentId}/purchases`, body, {
            'idempotency-key': key,
          });
          if (answer.status === 201) ok = true;
          else {
            statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
            if (answer.status < 500) break;
          }
        } catch {
          // transport error: the next API
        }
        if (!ok) {
          retries++;
          await sleep(Math.min(1_000, 50 * 2 ** attempt));
        }
      }
      if (!ok) errors++;
      samples.push({ at: sent - started, ms: performance.now() - sent, ok });
    }
  };
  await Promise.all([
    ...Array.from({ length: CLIENTS }, (_, i) => clientLoop(i)),
    during ? during(started) : Promise.resolve(),
  ]);
  const elapsed = (performance.now() - started) / 1000;
  const okSamples = samples.filter((s) => s.ok);
  return {
    seconds: round(elapsed, 1),
    purchases: okSamples.length,
    purchasesPerSecond: round(okSamples.length / elapsed, 1),
    errors,
    retries,
    statuses,
    latencyMs: distribution(okSamples.map((s) => s.ms)),
    samples,
  };
}

/** Warm-up (not measured), then the measured run. */
async function measured(label: string, apis: HttpClient[], ids: string[]): Promise<Omit<LoadResult, 'samples'>> {
  await load(apis, ids, WARMUP_SECONDS);
  const { samples, ...result } = await load(apis, ids, SECONDS);
  void samples;
  log(
    `${label}: ${result.purchasesPerSecond} purchases/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms (${result.purchases} in ${result.seconds} s, ${result.errors} errors ${JSON.stringify(result.statuses)})`,
  );
  return result;
}

/** Per-second buckets by send time: count, p99 and max latency. */
function perSecond(samples: Sample[]): Array<{ second: number; n: number; p99: number; max: number }> {
  const buckets = new Map<number, number[]>();
  for (const s of samples) {
    const second = Math.floor(s.at / 1000);
    buckets.set(second, [...(buckets.get(second) ?? []), s.ms]);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([second, ms]) => {
      const d = distribution(ms);
      return { second, n: ms.length, p99: d.p99, max: d.max };
    });
}

async function databaseSizes(cluster: Cluster): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: cluster.postgres.url('postgres') });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string; bytes: string }>(
      "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database WHERE datname IN ('temporal', 'temporal_visibility', 'ledger')",
    );
    return Object.fromEntries(rows.map((r) => [r.datname, Number(r.bytes)]));
  } finally {
    await client.end();
  }
}

const MiB = (bytes: number) => round(bytes / 1024 / 1024, 1);

export async function run(): Promise<void> {
  const results: Record<string, unknown> = {};
  const notes: string[] = [];

  // ---- the dev-server stack (what `npm start` and every other benchmark run) ----------------------
  const dev = await startStack({ label: 'cluster-devstack' });
  try {
    const ids = await fundedInstruments(dev, INSTRUMENTS, 'devstack');
    results.devStack = await measured('dev server, 1 worker, 1 API', [dev.api], ids);
  } finally {
    await dev.stop();
  }

  // ---- the cluster ----------------------------------------------------------------------------------
  const cluster = await startCluster({ ports: 'free', ui: false, progress: (m) => log(`cluster: ${m}`) });
  const connection = await Connection.connect({ address: cluster.address });
  const client = new Client({ connection, namespace: cluster.namespace });
  const view = stackView(cluster, client);
  const apis = cluster.apiUrls.map((url) => new HttpClient(url, { 'x-api-key': cluster.apiKey }));
  try {
    const ids = await fundedInstruments(view, INSTRUMENTS, 'cluster');

    // One worker: the second one stopped gracefully (its instruments move at once, no sticky wait).
    await cluster.workers[1].stop();
    results.clusterOneWorker = await measured('cluster, 1 worker, 2 APIs', apis, ids);
    await cluster.workers[1].start();
    results.clusterTwoWorkers = await measured('cluster, 2 workers, 2 APIs', apis, ids);

    // kill -9 one of the two workers a third into a run.
    const killAt = Math.round((SECONDS * 1000) / 3);
    const kill = await load(apis, ids, SECONDS * 2, async (startedAt) => {
      await sleep(killAt - (performance.now() - startedAt));
      await cluster.workers[0].kill9();
      log('worker-1 killed (kill -9)');
    });
    const buckets = perSecond(kill.samples);
    const killSecond = Math.floor(killAt / 1000);
    // Before the kill: purchases sent and answered before it (those sent just before it wait for it).
    const settled = kill.samples.filter((s) => s.ok && s.at >= 1000 && s.at + s.ms < killAt);
    const baseRate = settled.length / ((killAt - 1000) / 1000);
    const baseP99 = distribution(settled.map((s) => s.ms)).p99;
    // Recovered: from the first second after which three seconds in a row are back to what ONE worker
    // does (the capacity left): 80 % of its rate, p99 under twice its p99 (the one-worker run above).
    const oneWorker = results.clusterOneWorker as Omit<LoadResult, 'samples'>;
    const healthy = (b: { n: number; p99: number }) =>
      b.n >= 0.8 * oneWorker.purchasesPerSecond && b.p99 <= 2 * oneWorker.latencyMs.p99;
    const after = buckets.filter((b) => b.second >= killSecond);
    const recoveredIndex = after.findIndex(
      (_, i) => after.slice(i, i + 3).length === 3 && after.slice(i, i + 3).every(healthy),
    );
    const spike = Math.max(...kill.samples.filter((s) => s.at >= killAt - 1000).map((s) => s.ms));
    results.workerKill = {
      killAtSecond: round(killAt / 1000, 1),
      before: { purchasesPerSecond: round(baseRate, 1), p99Ms: baseP99 },
      spikeMaxLatencyMs: round(spike, 0),
      recoverySeconds: recoveredIndex < 0 ? null : after[recoveredIndex].second - killSecond,
      afterKillLatencyMs: distribution(kill.samples.filter((s) => s.ok && s.at >= killAt).map((s) => s.ms)),
      errors: kill.errors,
      retries: kill.retries,
      perSecond: buckets,
    };
    log(
      `worker kill: spike ${round(spike, 0)} ms, recovered after ${recoveredIndex < 0 ? 'never (in the window)' : `${after[recoveredIndex].second - killSecond} s`}, ${kill.errors} errors`,
    );
    await cluster.workers[0].start();

    // Footprint per instrument: fresh instruments, no purchases on them.
    const sizesBefore = await databaseSizes(cluster);
    const rssBefore = memory(cluster.temporal.pid).rssMiB;
    await fundedInstruments(view, SIZE_INSTRUMENTS, 'size');
    await sleep(2_000);
    const sizesAfter = await databaseSizes(cluster);
    const rssAfter = memory(cluster.temporal.pid).rssMiB;
    const per10k = (delta: number) => round((delta / SIZE_INSTRUMENTS) * 10_000, 1);
    const dbDelta = Object.fromEntries(
      Object.keys(sizesAfter).map((db) => [db, MiB(sizesAfter[db] - (sizesBefore[db] ?? 0))]),
    );
    const totalDelta = Object.values(dbDelta).reduce((a, b) => a + b, 0);
    results.footprint = {
      measuredOnInstruments: SIZE_INSTRUMENTS,
      databaseGrowthMiB: dbDelta,
      postgresMiBPer10kInstruments: per10k(totalDelta),
      databasesMiBAtEnd: Object.fromEntries(Object.entries(sizesAfter).map(([db, b]) => [db, MiB(b)])),
      temporalRssMiB: { before: rssBefore, after: rssAfter, peak: memory(cluster.temporal.pid).peakMiB },
      temporalRssGrowthMiBPer10kInstruments: per10k(rssAfter - rssBefore),
      instrumentsInClusterAtEnd: INSTRUMENTS + SIZE_INSTRUMENTS,
    };
    notes.push(
      `footprint measured on ${SIZE_INSTRUMENTS} new funded instruments (no purchases) and scaled linearly to 10,000; RSS is mostly caches that stop growing at their limits, so its per-10k figure is an upper bound`,
    );
  } finally {
    for (const api of apis) api.close();
    await connection.close().catch(() => undefined);
    await cluster.stop();
  }

  const d = results.devStack as Omit<LoadResult, 'samples'>;
  const one = results.clusterOneWorker as Omit<LoadResult, 'samples'>;
  const two = results.clusterTwoWorkers as Omit<LoadResult, 'samples'>;
  results.ratios = {
    clusterOneWorkerVsDevStackThroughput: round(one.purchasesPerSecond / d.purchasesPerSecond, 2),
    clusterTwoWorkersVsDevStackThroughput: round(two.purchasesPerSecond / d.purchasesPerSecond, 2),
    twoWorkersVsOneThroughput: round(two.purchasesPerSecond / one.purchasesPerSecond, 2),
    clusterOneWorkerVsDevStackP50: round(one.latencyMs.p50 / d.latencyMs.p50, 2),
    clusterTwoWorkersVsDevStackP99: round(two.latencyMs.p99 / d.latencyMs.p99, 2),
  };
  console.log(
    table([
      ['configuration', 'purchases/s', 'p50 ms', 'p99 ms', 'errors'],
      ['dev server (SQLite), 1 worker, 1 API', d.purchasesPerSecond, d.latencyMs.p50, d.latencyMs.p99, d.errors],
      [
        'cluster (PostgreSQL), 1 worker, 2 APIs',
        one.purchasesPerSecond,
        one.latencyMs.p50,
        one.latencyMs.p99,
        one.errors,
      ],
      [
        'cluster (PostgreSQL), 2 workers, 2 APIs',
        two.purchasesPerSecond,
        two.latencyMs.p50,
        two.latencyMs.p99,
        two.errors,
      ],
    ]),
  );
  console.log(JSON.stringify({ ratios: results.ratios, footprint: results.footprint }, null, 2));
  const file = writeResult({
    benchmark: name,
    at: new Date().toISOString(),
    smoke: false,
    machine: machine(),
    settings: {
      instruments: INSTRUMENTS,
      clients: CLIENTS,
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      sizeInstruments: SIZE_INSTRUMENTS,
    },
    results,
    targets: [],
    notes,
  });
  log(`results: ${file}`);
}

if (require.main === module) {
  run().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
