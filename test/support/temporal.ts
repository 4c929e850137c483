// One real Temporal server for the whole mocha run, and the helpers tests use to reach it.
// Registered in .mocharc.json as a global fixture: with TEMPORAL_ADDRESS set (as `npm test` does)
// it uses that server; otherwise it starts an in-memory dev server, but only when the run loads a
// spec outside test/unit, so `npm run test:unit` never starts one.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import type { NativeConnection, Worker, WorkerOptions, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { config } from '../../config';
import { exitOnSignals } from '../../scripts/lib/children';
import { ensureTemporalCli, startDevServer, type DevServer } from '../../scripts/temporal-cli';
import { stopAllServices } from './processes';

// Loaded on first use: unit-only runs load this file too and should not pay for the SDK.
/* eslint-disable @typescript-eslint/no-require-imports */
const clientSdk = () => require('@temporalio/client') as typeof import('@temporalio/client');
const workerSdk = () => require('@temporalio/worker') as typeof import('@temporalio/worker');
/* eslint-enable @typescript-eslint/no-require-imports */

export interface TestTemporal {
  /** host:port */
  address: string;
  namespace: string;
  /** The dev server this process started; undefined when TEMPORAL_ADDRESS was given. */
  server: DevServer | undefined;
}

export const TEMPORAL_SERVER_LOG = path.join(config().root, 'test-artifacts', 'temporal-dev-server.log');

let temporal: Promise<TestTemporal> | undefined;

/** The run's Temporal server, started on first call unless TEMPORAL_ADDRESS is set. */
export function getTestTemporal(): Promise<TestTemporal> {
  temporal ??= resolveTemporal();
  return temporal;
}

async function resolveTemporal(): Promise<TestTemporal> {
  const { address, namespace } = config().temporal;
  if (address) return { address, namespace, server: undefined };
  const cliPath = await ensureTemporalCli();
  rmSync(TEMPORAL_SERVER_LOG, { force: true });
  exitOnSignals();
  const server = await startDevServer({
    cliPath,
    headless: true,
    inMemory: true,
    namespace,
    logFile: TEMPORAL_SERVER_LOG,
  });
  // Publish it as if TEMPORAL_ADDRESS had been set: in-process code reads config() (the same
  // cached object), services spawned later inherit process.env.
  process.env.TEMPORAL_ADDRESS = server.address;
  config().temporal.address = server.address;
  return { address: server.address, namespace, server };
}

function connectionOptions(address: string) {
  const { tls, apiKey } = config().temporal;
  return { address, tls: tls || undefined, apiKey: apiKey || undefined };
}

let connection: Promise<Connection> | undefined;
/** A client Connection shared by the whole run. Do not close it: the global teardown does. */
export function testConnection(): Promise<Connection> {
  connection ??= getTestTemporal().then((t) => clientSdk().Connection.connect(connectionOptions(t.address)));
  return connection;
}

let client: Promise<Client> | undefined;
/** A Client on testConnection() and the run's namespace. */
export function testClient(): Promise<Client> {
  client ??= Promise.all([testConnection(), getTestTemporal()]).then(
    ([conn, t]) => new (clientSdk().Client)({ connection: conn, namespace: t.namespace }),
  );
  return client;
}

let nativeConnection: Promise<NativeConnection> | undefined;
/** A worker NativeConnection shared by the whole run. Do not close it: the global teardown does. */
export function testNativeConnection(): Promise<NativeConnection> {
  nativeConnection ??= getTestTemporal().then((t) => {
    installTestRuntime();
    return workerSdk().NativeConnection.connect(connectionOptions(t.address));
  });
  return nativeConnection;
}

let runtimeInstalled = false;
/** Must run before anything creates the SDK's Runtime (the first NativeConnection or Worker). */
function installTestRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const { Runtime, DefaultLogger } = workerSdk();
  try {
    Runtime.install({
      // INFO would print every worker state change into the mocha output.
      logger: new DefaultLogger('WARN'),
      // The default (shut workers down on SIGINT/SIGTERM) would swallow Ctrl-C in mocha.
      shutdownSignals: [],
    });
  } catch {
    // A test created a Worker before asking us for one: its Runtime stays.
  }
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
/**
 * The webpack bundle of `workflowsPath`, built once per run (it takes seconds). `preloadModules` as
 * the production worker bundles them (worker/create-worker.ts PRELOADED_WORKFLOW_MODULES).
 */
export function bundleTestWorkflows(
  workflowsPath: string,
  preloadModules: readonly string[] = [],
): Promise<WorkflowBundleWithSourceMap> {
  const resolved = path.resolve(workflowsPath);
  const key = [resolved, ...preloadModules].join('\n');
  let bundle = bundles.get(key);
  if (!bundle) {
    const { bundleWorkflowCode, DefaultLogger } = workerSdk();
    bundle = bundleWorkflowCode({
      workflowsPath: resolved,
      preloadModules: [...preloadModules],
      logger: new DefaultLogger('WARN'),
    });
    bundles.set(key, bundle);
    // A broken workflow file should fail each test that asks, not be cached as a rejection forever.
    bundle.catch(() => bundles.delete(key));
  }
  return bundle;
}

/** A task queue name no other test uses: all tests share one server. */
export function uniqueTaskQueue(prefix = 'test'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export type TestWorkerOptions = Partial<Omit<WorkerOptions, 'connection' | 'workflowsPath' | 'workflowBundle'>> & {
  /** Module exporting the workflow functions, e.g. require.resolve('./fixtures/smoke-workflows'). */
  workflowsPath: string;
  /** Bundle option: modules shared by all workflows of a thread (see bundleTestWorkflows). */
  preloadModules?: readonly string[];
  /** Default: a fresh uniqueTaskQueue(). */
  taskQueue?: string;
  activities?: object;
};

export interface TestWorker {
  worker: Worker;
  taskQueue: string;
  /** Shuts the worker down and waits for it; rethrows the error if the worker had failed. */
  stop(): Promise<void>;
}

const liveWorkers = new Set<TestWorker>();

/** A Worker on the run's server, polling until stop() (or the global teardown). */
export async function startTestWorker(options: TestWorkerOptions): Promise<TestWorker> {
  const { workflowsPath, preloadModules, taskQueue = uniqueTaskQueue(), ...rest } = options;
  const [connection, workflowBundle, t] = await Promise.all([
    testNativeConnection(),
    bundleTestWorkflows(workflowsPath, preloadModules),
    getTestTemporal(),
  ]);
  const worker = await workerSdk().Worker.create({
    ...rest,
    connection,
    namespace: t.namespace,
    taskQueue,
    workflowBundle,
  });
  let failure: unknown;
  const running = worker.run().catch((err: unknown) => {
    // Otherwise a test just times out waiting for a result nobody will produce.
    failure = err;
    console.error(`test worker on ${taskQueue} failed:`, err);
  });
  const handle: TestWorker = {
    worker,
    taskQueue,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      liveWorkers.delete(handle);
      if (failure) throw failure;
    },
  };
  liveWorkers.add(handle);
  return handle;
}

type GlobalFixtureContext = { suite?: Mocha.Suite };

function loadedSpecFiles(suite: Mocha.Suite, files = new Set<string>()): Set<string> {
  if (suite.file) files.add(suite.file);
  for (const test of suite.tests) if (test.file) files.add(test.file);
  for (const child of suite.suites) loadedSpecFiles(child, files);
  return files;
}

/** Mocha global setup (`this` is the Runner, with every spec file already loaded). */
export async function mochaGlobalSetup(this: GlobalFixtureContext): Promise<void> {
  const unitDir = path.join(config().root, 'test', 'unit') + path.sep;
  const files = this.suite ? [...loadedSpecFiles(this.suite)] : [];
  if (!files.some((file) => !path.resolve(file).startsWith(unitDir))) return;
  // Before any test: the start-up time is not charged to the first test's timeout, and
  // config().temporal.address is set before tests read it.
  const t = await getTestTemporal();
  if (t.server) {
    const log = path.relative(process.cwd(), TEMPORAL_SERVER_LOG);
    console.log(`  Temporal dev server at ${t.address} (started in ${t.server.startupMs} ms, log ${log})`);
  }
}

/** Mocha global teardown: services, workers, connections, then the server, in that order. */
export async function mochaGlobalTeardown(): Promise<void> {
  await stopAllServices();
  await Promise.allSettled([...liveWorkers].map((w) => w.stop()));
  const closing: Array<Promise<unknown>> = [];
  if (nativeConnection) closing.push(nativeConnection.then((c) => c.close()));
  if (connection) closing.push(connection.then((c) => c.close()));
  await Promise.allSettled(closing);
  const server = temporal && (await temporal.catch(() => undefined))?.server;
  if (server) {
    await server.stop();
    // Un-publish it, so a next run in the same process (mocha --watch) starts a fresh one.
    delete process.env.TEMPORAL_ADDRESS;
    config().temporal.address = '';
  }
  temporal = connection = client = nativeConnection = undefined;
}
