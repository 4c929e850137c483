// The whole product on this machine for a benchmark: a Temporal dev server (persistent SQLite file
// with the WAL pragmas, in a temp dir), the FPS sandbox, the worker and the merchant API, each its
// own process started the way production starts it (sandbox/main.ts, worker/main.ts, api/main.ts),
// on free loopback ports and a fresh task queue. With TEMPORAL_ADDRESS set, that server is used.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { config, DEV_API_KEY, DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { temporalRetryInterceptors } from '../../api/temporal-retry';
import { FpsClient } from '../../fps/client';
import { freePorts } from '../../scripts/lib/ports';
import { ensureTemporalCli, startDevServer, type DevServer } from '../../scripts/temporal-cli';
import { log, resultsDir, SMOKE } from './common';
import { HttpClient } from './http';
import { httpOk, startProcess, waitFor, type BenchProcess } from './processes';

export interface StackOptions {
  /** Names the temp dir, the log files and the task queue. */
  label: string;
  /** Run worker and API (and sandbox) under `node --cpu-prof`, profiles into this directory. */
  cpuProfileDir?: string;
  /** Extra environment for the worker (e.g. TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS). */
  workerEnv?: Record<string, string>;
  apiEnv?: Record<string, string>;
  /** Extra `temporal server start-dev` arguments (dynamic config). */
  temporalArgs?: string[];
  /** A Temporal server already running (several stacks on one server); default: TEMPORAL_ADDRESS, else a dev server of its own. */
  temporalAddress?: string;
  /** The record (LEDGER_DATABASE_URL); default: that variable, else a SQLite file in the stack's temp dir. */
  ledgerUrl?: string;
  /** Entry points other than the product's worker/main.ts and api/main.ts (A/B variants). */
  workerScript?: string;
  apiScript?: string;
}

export interface Stack {
  label: string;
  apiUrl: string;
  sandboxUrl: string;
  apiKey: string;
  taskQueue: string;
  namespace: string;
  temporalAddress: string;
  /** Temporal client in this process (shares nothing with the API's). */
  client: Client;
  /** Keep-alive HTTP client for the API, with the API key. */
  api: HttpClient;
  /** Keep-alive HTTP client for the sandbox (CBUI, admin). */
  sandboxHttp: HttpClient;
  /** The signed FPS Query API client, on the sandbox. */
  fps: FpsClient;
  processes: { worker: BenchProcess; api: BenchProcess; sandbox: BenchProcess };
  /** pids for /proc readings; temporal is undefined when TEMPORAL_ADDRESS was given. */
  pids: { worker: number; api: number; sandbox: number; temporal?: number };
  /** What the worker was started with (config defaults plus overrides). */
  workerSettings: Record<string, unknown>;
  /** The record the API and worker write (LEDGER_DATABASE_URL). */
  ledgerUrl: string;
  logLevel: string;
  temporalCli?: string;
  stop(): Promise<void>;
}

async function hasPoller(client: Client, namespace: string, taskQueue: string): Promise<boolean> {
  const r = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: 1 /* WORKFLOW */,
  });
  return (r.pollers?.length ?? 0) > 0;
}

/** Worker settings as the worker process will read them (config/index.ts), for the record. */
export function workerSettingsFor(env: Record<string, string | undefined>): Record<string, unknown> {
  const w = config().temporal.worker;
  const num = (name: string, fallback: number) =>
    env[name] !== undefined ? Number(env[name]) : process.env[name] ? Number(process.env[name]) : fallback;
  return {
    maxCachedWorkflows: num('TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS', w.maxCachedWorkflows),
    maxConcurrentWorkflowTaskExecutions: num(
      'TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS',
      w.maxConcurrentWorkflowTaskExecutions,
    ),
    maxConcurrentActivityTaskExecutions: num(
      'TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES',
      w.maxConcurrentActivityTaskExecutions,
    ),
    maxConcurrentLocalActivityExecutions: num(
      'TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES',
      w.maxConcurrentLocalActivityExecutions,
    ),
  };
}

let shared: Promise<Stack & { realStop(): Promise<void> }> | undefined;

/**
 * BENCH_SHARED_STACK=1 (the default of smoke runs): benchmarks that need no special stack share one,
 * which stopSharedStack() ends, instead of starting their own. Measured runs keep them apart.
 */
export function startStack(options: StackOptions): Promise<Stack> {
  const sharing = (process.env.BENCH_SHARED_STACK ?? (SMOKE ? '1' : '0')) === '1';
  const { label: _label, ...special } = options;
  if (!sharing || Object.values(special).some((v) => v !== undefined)) return startOwnStack(options);
  shared ??= startOwnStack({ label: 'shared' });
  shared.catch(() => (shared = undefined));
  // Its stop() is a no-op: stopSharedStack() stops it once every benchmark is done.
  return shared.then((stack) => ({ ...stack, stop: async () => undefined }));
}

export async function stopSharedStack(): Promise<void> {
  const s = shared;
  shared = undefined;
  if (s) await (await s.catch(() => undefined))?.realStop();
}

async function startOwnStack(options: StackOptions): Promise<Stack & { realStop(): Promise<void> }> {
  const cfg = config();
  const started = performance.now();
  const tmp = mkdtempSync(path.join(os.tmpdir(), `fps-bench-${options.label}-`));
  const logs = path.join(resultsDir(), 'logs');
  mkdirSync(logs, { recursive: true });
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    cleanups.length = 0;
  };
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  try {
    const temporalCli = await ensureTemporalCli().catch(() => undefined);
    let address = options.temporalAddress || cfg.temporal.address;
    let server: DevServer | undefined;
    if (!address) {
      if (!temporalCli) throw new Error('no Temporal CLI: set TEMPORAL_CLI_PATH or TEMPORAL_ADDRESS');
      server = await startDevServer({
        cliPath: temporalCli,
        headless: true,
        dbFile: path.join(tmp, 'temporal.sqlite'),
        namespace: cfg.temporal.namespace,
        logFile: path.join(logs, `${options.label}-temporal.log`),
      });
      cleanups.push(() => server!.stop());
      address = server.address;
    }

    const connection = await Connection.connect({ address, interceptors: temporalRetryInterceptors() });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: cfg.temporal.namespace });

    const [sandboxPort, apiPort] = await freePorts(2);
    const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const taskQueue = `bench-${options.label}-${randomUUID().slice(0, 8)}`;
    const logLevel = process.env.BENCH_LOG_LEVEL || process.env.LOG_LEVEL || 'info';
    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: cfg.temporal.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      SANDBOX_PORT: String(sandboxPort),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: sandboxUrl,
      SANDBOX_DATA_DIR: path.join(tmp, 'sandbox'),
      LEDGER_DATABASE_URL:
        options.ledgerUrl || process.env.LEDGER_DATABASE_URL || `sqlite:${path.join(tmp, 'ledger.sqlite')}`,
      SANDBOX_IPN_URL: `${apiUrl}/fps/ipn`,
      SANDBOX_FAULTS: '',
      API_PORT: String(apiPort),
      API_HOST: '127.0.0.1',
      API_PUBLIC_URL: apiUrl,
      API_KEYS: DEV_API_KEY,
      FPS_ENDPOINT: `${sandboxUrl}/`,
      FPS_CBUI_ENDPOINT: `${sandboxUrl}/cobranded-ui/actions/start`,
      FPS_CERTIFICATE_URL_ALLOWLIST: `${sandboxUrl}/certs/`,
      FPS_ACCESS_KEY_ID: DEV_ACCESS_KEY_ID,
      FPS_SECRET_KEY: DEV_SECRET_KEY,
      LOG_LEVEL: logLevel,
    };
    const profileDir = (name: string) => (options.cpuProfileDir ? path.join(options.cpuProfileDir, name) : undefined);
    const logFile = (name: string) => path.join(logs, `${options.label}-${name}.log`);
    for (const name of ['sandbox', 'worker', 'api']) rmSync(logFile(name), { force: true });

    const sandbox = startProcess({
      name: 'sandbox',
      script: 'sandbox/main.ts',
      env,
      logFile: logFile('sandbox'),
      cpuProfileDir: profileDir('sandbox'),
    });
    cleanups.push(() => sandbox.stop());
    await waitFor('sandbox', () => httpOk(`${sandboxUrl}/healthz`), 30_000, sandbox);

    const workerEnv = { ...env, ...options.workerEnv };
    // BENCH_WORKER_SCRIPT: an experimental worker entry point (A/B runs); the product's by default.
    const worker = startProcess({
      name: 'worker',
      script: options.workerScript || process.env.BENCH_WORKER_SCRIPT || 'worker/main.ts',
      env: workerEnv,
      logFile: logFile('worker'),
      cpuProfileDir: profileDir('worker'),
    });
    cleanups.push(() => worker.stop(30_000));
    const api = startProcess({
      name: 'api',
      script: options.apiScript || 'api/main.ts',
      env: { ...env, ...options.apiEnv },
      logFile: logFile('api'),
      cpuProfileDir: profileDir('api'),
    });
    cleanups.push(() => api.stop());
    await Promise.all([
      // Ready once it polls its task queue (whatever LOG_LEVEL says about its start-up line).
      waitFor('worker', () => hasPoller(client, cfg.temporal.namespace, taskQueue), 180_000, worker),
      waitFor('api', () => httpOk(`${apiUrl}/readyz`), 60_000, api),
    ]);

    const apiHttp = new HttpClient(apiUrl, { 'x-api-key': DEV_API_KEY });
    const sandboxHttp = new HttpClient(sandboxUrl);
    cleanups.push(
      () => apiHttp.close(),
      () => sandboxHttp.close(),
    );
    // Cleanups run in reverse: HTTP clients, API, worker, sandbox, Temporal client, server, temp dir.
    log(
      `${options.label}: stack up in ${Math.round(performance.now() - started)} ms (Temporal ${address}${server ? `, pid ${server.pid}` : ', external'}, task queue ${taskQueue})`,
    );

    return {
      label: options.label,
      apiUrl,
      sandboxUrl,
      apiKey: DEV_API_KEY,
      taskQueue,
      namespace: cfg.temporal.namespace,
      temporalAddress: address,
      client,
      api: apiHttp,
      sandboxHttp,
      fps: new FpsClient({ endpoint: `${sandboxUrl}/`, accessKeyId: DEV_ACCESS_KEY_ID, secretKey: DEV_SECRET_KEY }),
      processes: { worker, api, sandbox },
      pids: { worker: worker.pid, api: api.pid, sandbox: sandbox.pid, temporal: server?.pid },
      workerSettings: workerSettingsFor(workerEnv),
      ledgerUrl: env.LEDGER_DATABASE_URL,
      logLevel,
      temporalCli,
      async stop() {
        await cleanup();
      },
      async realStop() {
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
