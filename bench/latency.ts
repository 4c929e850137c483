// 1. Floor vs product latency of one purchase, sequential, one client at a time:
//   (a) floor:   a signed Pay straight to the sandbox with FpsClient (what the activity does);
//   (b) workflow: the purchase Update with the Temporal client, straight to the instrument workflow;
//   (c) product: POST /instruments/:id/purchases through the API process.
// Two more rows decompose the gap between (a) and (b): the Temporal floor on the same server, an
// Update whose handler returns at once (t0) and one that runs a no-op local activity (t1), served by
// a worker in this process (bench/lib/floor/workflows.ts).
// All paths run interleaved in rounds (a block of each per round) so that drift on a shared
// machine hits them alike. Targets: (c) p50 <= 25 ms, p99 <= 100 ms, (c)/(a) <= 3 at p50.
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../config';
import { buildCbuiUrl } from '../fps/cbui';
import { purchaseUpdate, workflowIdFor } from '../workflows/messages';
import {
  distribution,
  log,
  machine,
  round,
  setting,
  table,
  target,
  type BenchResult,
  type Distribution,
} from './lib/common';
import { localActivityUpdate, noopUpdate } from './lib/floor/workflows';
import { getNoRedirect } from './lib/http';
import { CpuMeter } from './lib/processes';
import { approve, createInstrument, snapshot, waitUntilReady } from './lib/instruments';
import { startStack, type Stack } from './lib/stack';

export const name = 'latency';

/** A prepaid instrument at the sandbox alone (no workflow): CBUI approval, then FundPrepaid. */
async function sandboxPrepaid(stack: Stack, reference: string, cents: number): Promise<string> {
  const cbui = buildCbuiUrl({
    endpoint: `${stack.sandboxUrl}/cobranded-ui/actions/start`,
    callerKey: DEV_ACCESS_KEY_ID,
    secretKey: DEV_SECRET_KEY,
    returnUrl: 'http://127.0.0.1:9/return',
    pipeline: 'SetupPrepaid',
    callerReferenceSender: `${reference}:sender`,
    callerReferenceFunding: `${reference}:funding`,
    fundingAmount: { amount: cents, currency: 'USD' },
  });
  const url = new URL(cbui);
  const answer = await getNoRedirect(stack.sandboxHttp, `${url.pathname}${url.search}`, {
    'x-sandbox-decision': 'approve',
  });
  const back = new URL(answer.location ?? 'http://invalid/');
  if (back.searchParams.get('status') !== 'SC') throw new Error(`CBUI did not approve: HTTP ${answer.status}`);
  const funded = await stack.fps.call('FundPrepaid', {
    prepaidInstrumentId: back.searchParams.get('prepaidInstrumentID')!,
    senderTokenId: back.searchParams.get('fundingTokenID')!,
    fundingAmount: { amount: cents, currency: 'USD' },
    callerReference: `${reference}:fund`,
  });
  if (funded.transactionStatus !== 'Success') throw new Error(`FundPrepaid: ${funded.transactionStatus}`);
  return back.searchParams.get('prepaidSenderTokenID')!;
}

async function apiPrepaid(stack: Stack, customerId: string, funding: string): Promise<string> {
  const { instrumentId, authorizationUrl } = await createInstrument(stack, customerId, {
    type: 'prepaid',
    fundingAmount: funding,
    currency: 'USD',
    description: 'latency benchmark',
  });
  await approve(stack, authorizationUrl);
  await waitUntilReady(stack, [instrumentId], 60_000);
  return instrumentId;
}

/**
 * A worker in this process for the floor workflows. They never continue-as-new, so `handleFor()`
 * moves to a fresh floor workflow every 500 Updates (between measured calls): Temporal takes at
 * most 2,000 Updates per run, and a longer history would make the floor slower than the
 * instruments' runs, which continue-as-new every ~700 purchases.
 */
async function floorWorker(stack: Stack) {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  } catch {
    // already installed (an earlier benchmark in this process)
  }
  const connection = await NativeConnection.connect({ address: stack.temporalAddress });
  const taskQueue = `bench-floor-${randomUUID().slice(0, 8)}`;
  const worker = await Worker.create({
    connection,
    namespace: stack.namespace,
    taskQueue,
    workflowsPath: require.resolve('./lib/floor/workflows'),
    activities: { async nothing() {} },
  });
  const running = worker.run();
  const started: WorkflowHandle[] = [];
  const fresh = async () => {
    const h = await stack.client.workflow.start('floorWorkflow', {
      taskQueue,
      workflowId: `bench-floor-${randomUUID()}`,
    });
    started.push(h);
    return { handle: h, updates: 0 };
  };
  const current = { t0: await fresh(), t1: await fresh() };
  return {
    /** A handle with room for one more Update (prepared before the timed call). */
    async handleFor(path: 't0' | 't1'): Promise<WorkflowHandle> {
      if (current[path].updates >= 500) current[path] = await fresh();
      current[path].updates++;
      return current[path].handle;
    },
    async stop() {
      for (const h of started) await h.terminate('benchmark finished').catch(() => undefined);
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

export async function run(): Promise<BenchResult> {
  const samples = setting('BENCH_LATENCY_SAMPLES', 1_000, 15, { min: 1, max: 20_000 });
  const warmup = setting('BENCH_LATENCY_WARMUP', 100, 5, { max: 5_000 });
  const rounds = Math.min(samples, setting('BENCH_LATENCY_ROUNDS', 5, 1, { min: 1, max: 100 }));
  const maxSeconds = setting('BENCH_LATENCY_MAX_SECONDS', 600, 60, { min: 1 });
  const stack = await startStack({ label: name });
  let floor: Awaited<ReturnType<typeof floorWorker>> | undefined;
  try {
    const run = Date.now().toString(36);
    const cents = 100 * (samples + warmup) * 10;
    const senderToken = await sandboxPrepaid(stack, `bench-floor-${run}`, cents);
    const funding = (cents / 100).toFixed(2);
    const [workflowInstrument, apiInstrument] = await Promise.all([
      apiPrepaid(stack, 'bench-latency-b', funding),
      apiPrepaid(stack, 'bench-latency-c', funding),
    ]);
    const handle = stack.client.workflow.getHandle(workflowIdFor(workflowInstrument));
    floor = await floorWorker(stack);
    const floorWorkflows = floor;

    let seq = 0;
    // Each path returns the timed call; anything before it (picking a floor workflow) is not timed.
    const paths: Record<string, () => Promise<() => Promise<unknown>>> = {
      t0: async () => {
        const h = await floorWorkflows.handleFor('t0');
        return () => h.executeUpdate(noopUpdate, { args: [seq], updateId: `t0-${seq++}` });
      },
      t1: async () => {
        const h = await floorWorkflows.handleFor('t1');
        return () => h.executeUpdate(localActivityUpdate, { args: [seq], updateId: `t1-${seq++}` });
      },
      a: async () => async () => {
        const r = await stack.fps.call('Pay', {
          senderTokenId: senderToken,
          transactionAmount: { amount: 1, currency: 'USD' },
          callerReference: `bench-floor-${run}:pay:${seq++}`,
        });
        if (r.transactionStatus !== 'Success') throw new Error(`Pay: ${r.transactionStatus}`);
      },
      b: async () => async () => {
        const purchaseId = `b-${run}-${seq++}`;
        const r = await handle.executeUpdate(purchaseUpdate, {
          args: [{ purchaseId, amount: 1, currency: 'USD' }],
          updateId: purchaseId,
        });
        if (r.outcome !== 'approved') throw new Error(`purchase Update: ${JSON.stringify(r)}`);
      },
      c: async () => async () => {
        const r = await stack.api.request(
          'POST',
          `/instruments/${apiInstrument}/purchases`,
          '{"amount":"0.01","currency":"USD"}',
          { 'idempotency-key': `c-${run}-${seq++}` },
        );
        if (r.status !== 201) throw new Error(`POST purchases: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      },
    };
    type PathName = 'a' | 't0' | 't1' | 'b' | 'c';
    const order: PathName[] = ['a', 't0', 't1', 'b', 'c'];
    const times = Object.fromEntries(order.map((p) => [p, [] as number[]])) as Record<PathName, number[]>;
    const deadline = performance.now() + maxSeconds * 1000;

    log(`${name}: warm-up ${warmup} of each path`);
    for (const p of order) for (let i = 0; i < warmup && performance.now() < deadline; i++) await (await paths[p]())();

    log(`${name}: ${samples} sequential purchases per path in ${rounds} interleaved rounds`);
    const perRound = Math.ceil(samples / rounds);
    const meter = new CpuMeter({
      worker: stack.pids.worker,
      api: stack.pids.api,
      sandbox: stack.pids.sandbox,
      bench: process.pid,
      ...(stack.pids.temporal ? { temporal: stack.pids.temporal } : {}),
    });
    meter.start();
    for (let r = 0; r < rounds; r++) {
      for (const p of order) {
        for (let i = 0; i < perRound && times[p].length < samples && performance.now() < deadline; i++) {
          const call = await paths[p]();
          const t0 = performance.now();
          await call();
          times[p].push(performance.now() - t0);
        }
      }
    }
    const cpu = meter.read();
    const otherLoadPercent = round((100 * cpu.otherMs) / (cpu.wallMs * machine().nproc), 1);
    const d = Object.fromEntries(order.map((p) => [p, distribution(times[p])])) as Record<PathName, Distribution>;
    const ratio = (p: PathName, q: 'p50' | 'p95' | 'p99') => round(d[p][q] / d.a[q], 1);
    const [snapB, snapC] = await Promise.all([snapshot(stack, workflowInstrument), snapshot(stack, apiInstrument)]);

    const labels: Record<PathName, string> = {
      a: '(a) signed Pay to the sandbox (FpsClient)',
      t0: '  floor: no-op Update (diagnostic)',
      t1: '  floor: Update + no-op local activity (diagnostic)',
      b: '(b) purchase Update via Temporal client',
      c: '(c) POST /instruments/:id/purchases (API)',
    };
    console.log(
      table([
        ['path', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms', 'max ms', 'p50 / (a)', 'p99 / (a)'],
        ...order.map((p) => [
          labels[p],
          d[p].n,
          d[p].p50,
          d[p].p95,
          d[p].p99,
          d[p].mean,
          d[p].max,
          p === 'a' ? '1' : ratio(p, 'p50'),
          p === 'a' ? '1' : ratio(p, 'p99'),
        ]),
      ]),
    );
    console.log(`other load on the machine while measuring: ${otherLoadPercent} % of all CPUs`);
    return {
      benchmark: name,
      at: new Date().toISOString(),
      smoke: false,
      machine: machine(stack.temporalCli),
      settings: { samples, warmup, rounds, amount: '0.01 USD', worker: stack.workerSettings, logLevel: stack.logLevel },
      results: {
        otherLoadPercent,
        floorPay: d.a,
        temporalNoopUpdate: d.t0,
        temporalLocalActivityUpdate: d.t1,
        workflowUpdate: d.b,
        apiPurchase: d.c,
        ratios: {
          b_a: { p50: ratio('b', 'p50'), p95: ratio('b', 'p95'), p99: ratio('b', 'p99') },
          c_a: { p50: ratio('c', 'p50'), p95: ratio('c', 'p95'), p99: ratio('c', 'p99') },
        },
        continueAsNew: { workflowUpdateInstrument: snapB.continueAsNewCount, apiInstrument: snapC.continueAsNewCount },
      },
      targets: [
        target('(c) API purchase p50', '<= 25 ms', `${d.c.p50} ms`, d.c.p50 <= 25),
        target('(c) API purchase p99', '<= 100 ms', `${d.c.p99} ms`, d.c.p99 <= 100),
        target('(c)/(a) at p50', '<= 3', ratio('c', 'p50'), ratio('c', 'p50') <= 3),
        target(
          '(b) p50 vs the Update + no-op local activity floor',
          '<= 1.2 x',
          `${d.b.p50} / ${d.t1.p50} ms = ${round(d.b.p50 / d.t1.p50, 2)} x`,
          d.b.p50 <= 1.2 * d.t1.p50,
        ),
        target(
          '(c) p50 vs (b) p50',
          '<= 1.08 x',
          `${d.c.p50} / ${d.b.p50} ms = ${round(d.c.p50 / d.b.p50, 2)} x`,
          d.c.p50 <= 1.08 * d.b.p50,
        ),
      ],
    };
  } finally {
    await floor?.stop();
    await stack.stop();
  }
}
