// Latency of one purchase as the API sees it: client executeUpdate(purchase) -> result, through a
// real Temporal server, the real worker (local-activity Pay, signed FPS call) and the sandbox as its
// own process. Sequential purchases on one prepaid instrument, after a warm-up.
//
//   npx tsx bench/purchase-update.ts [--purchases 200] [--warmup 20]
//
// Uses TEMPORAL_ADDRESS when set, else starts an in-memory dev server; always starts its own
// sandbox (temp data dir, IPNs off). Prints p50/p90/p99 and writes bench/results/purchase-update-<time>.json.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createFpsActivities } from '../activities/fps-activities';
import { config, DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../config';
import { buildCbuiUrl, parseCbuiReturn } from '../fps/cbui';
import { callerReferenceFor } from '../fps/caller-reference';
import { FpsClient } from '../fps/client';
import { spawnChild, tsxCommand, type ManagedChild } from '../scripts/lib/children';
import { freePort } from '../scripts/lib/ports';
import { waitForHttpOk } from '../scripts/lib/wait';
import { ensureTemporalCli, startDevServer } from '../scripts/temporal-cli';
import { createInstrumentWorker } from '../worker/create-worker';
import type { instrumentWorkflow } from '../workflows';
import {
  authorizationReturnedSignal,
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  purchaseUpdate,
  snapshotQuery,
  workflowIdFor,
  type AuthorizationReturn,
  type InstrumentInput,
} from '../workflows/messages';

const { values } = parseArgs({
  options: {
    purchases: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '20' },
  },
});
const purchases = Math.min(2_000, Math.max(1, Number(values.purchases)));
const warmup = Math.max(0, Number(values.warmup));

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const round = (ms: number) => Math.round(ms * 100) / 100;

async function startSandbox(): Promise<{ url: string; child: ManagedChild }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { command, args } = tsxCommand(path.join(config().root, 'sandbox/main.ts'));
  const child = spawnChild({
    name: 'sandbox',
    command,
    args,
    cwd: config().root,
    env: {
      ...process.env,
      SANDBOX_PORT: String(port),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: url,
      SANDBOX_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'fps-sandbox-bench-')),
      SANDBOX_IPN_URL: '',
      SANDBOX_FAULTS: '',
    },
    onLine: () => {},
  });
  await waitForHttpOk(`${url}/healthz`, { timeoutMs: 30_000, child });
  return { url, child };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const stops: Array<() => Promise<unknown>> = [];
  try {
    let address = config().temporal.address;
    if (!address) {
      const server = await startDevServer({ cliPath: await ensureTemporalCli(), headless: true, inMemory: true });
      stops.unshift(() => server.stop());
      address = server.address;
    }
    const sandbox = await startSandbox();
    stops.unshift(() => sandbox.child.stop());

    const taskQueue = `bench-purchase-${Date.now()}`;
    const nativeConnection = await NativeConnection.connect({ address });
    stops.unshift(() => nativeConnection.close());
    const gateway = new FpsClient({ endpoint: `${sandbox.url}/`, accessKeyId: DEV_ACCESS_KEY_ID, secretKey: DEV_SECRET_KEY });
    const worker = await createInstrumentWorker({ connection: nativeConnection, taskQueue, activities: createFpsActivities(gateway) });
    const running = worker.run();
    stops.unshift(async () => {
      worker.shutdown();
      await running;
    });

    const connection = await Connection.connect({ address });
    stops.unshift(() => connection.close());
    const client = new Client({ connection, namespace: config().temporal.namespace });

    const fundingAmount = 100 * (purchases + warmup) * 2;
    const input: InstrumentInput = { instrumentId: `bench-${Date.now()}`, customerId: 'bench', type: 'prepaid', currency: 'USD', fundingAmount };
    const handle = await client.workflow.start<typeof instrumentWorkflow>(INSTRUMENT_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: workflowIdFor(input.instrumentId),
      args: [input],
      typedSearchAttributes: instrumentSearchAttributes(input),
      staticSummary: instrumentStaticSummary(input),
    });
    // The buyer approves SetupPrepaid (non-interactively), the workflow funds the instrument.
    const cbui = buildCbuiUrl({
      pipeline: 'SetupPrepaid',
      endpoint: `${sandbox.url}/cobranded-ui/actions/start`,
      callerKey: DEV_ACCESS_KEY_ID,
      secretKey: DEV_SECRET_KEY,
      returnUrl: 'http://127.0.0.1:9/return',
      callerReferenceSender: callerReferenceFor(input.instrumentId, 'sender'),
      callerReferenceFunding: callerReferenceFor(input.instrumentId, 'funding'),
      fundingAmount: { amount: fundingAmount, currency: 'USD' },
    });
    const res = await fetch(cbui, { headers: { 'X-Sandbox-Decision': 'approve' }, redirect: 'manual' });
    const params = Object.fromEntries(new URL(res.headers.get('location')!).searchParams);
    await handle.signal(authorizationReturnedSignal, parseCbuiReturn('SetupPrepaid', params) as AuthorizationReturn);
    for (let i = 0; (await handle.query(snapshotQuery)).state !== 'active'; i++) {
      if (i > 200) throw new Error('the instrument did not become active');
      await new Promise((r) => setTimeout(r, 50));
    }

    const latencies: number[] = [];
    for (let i = 0; i < warmup + purchases; i++) {
      const purchaseId = `p-${i}`;
      const started = performance.now();
      const result = await handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId, amount: 100, currency: 'USD' }], updateId: purchaseId });
      const ms = performance.now() - started;
      if (result.outcome !== 'approved') throw new Error(`purchase ${purchaseId}: ${JSON.stringify(result)}`);
      if (i >= warmup) latencies.push(ms);
    }
    const snapshot = await handle.query(snapshotQuery);
    const sorted = [...latencies].sort((a, b) => a - b);
    const result = {
      bench: 'purchase-update',
      at: new Date().toISOString(),
      purchases,
      warmup,
      p50Ms: round(percentile(sorted, 50)),
      p90Ms: round(percentile(sorted, 90)),
      p99Ms: round(percentile(sorted, 99)),
      minMs: round(sorted[0]),
      maxMs: round(sorted[sorted.length - 1]),
      meanMs: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
      continueAsNewCount: snapshot.continueAsNewCount,
      node: process.version,
      cpus: os.cpus().length,
      temporal: config().temporal.address ? 'TEMPORAL_ADDRESS' : 'in-memory dev server',
    };
    console.log(
      `purchase Update round trip over ${purchases} sequential purchases: p50 ${result.p50Ms} ms, p90 ${result.p90Ms} ms, p99 ${result.p99Ms} ms (min ${result.minMs}, max ${result.maxMs}, mean ${result.meanMs})`,
    );
    const dir = path.join(config().root, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `purchase-update-${result.at.replace(/[:.]/g, '-')}.json`), `${JSON.stringify(result, null, 2)}\n`);
    await handle.terminate('benchmark finished');
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
