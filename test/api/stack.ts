// The real stack for API and browser tests, started once per mocha run and shared by every suite
// that asks: the harness's Temporal server, then the FPS sandbox, a worker and the merchant API,
// each as its own process (the way production runs them), on free ports and a fresh task queue.
// startInProcessApi() is the lighter variant: the app in this process, a sandbox, no worker.
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import { createApi, type MerchantApi } from '../../api/app';
import { config, DEV_API_KEY, type Config } from '../../config';
import pino from 'pino';
import { freePorts, spawnService, type Service } from '../support/processes';
import { getTestTemporal, testClient, uniqueTaskQueue } from '../support/temporal';

export interface Stack {
  apiUrl: string;
  sandboxUrl: string;
  apiKey: string;
  client: Client;
  taskQueue: string;
  sandboxDataDir: string;
  /** Environment shared by the three processes (ports, URLs, task queue). */
  env: Record<string, string>;
  api: Service;
  sandbox: Service;
  worker: Service;
  /** What the API process has logged in this run (its log file is appended to across runs). */
  apiLog(): string;
}

let stack: Promise<Stack> | undefined;

/** The shared stack; the harness's global teardown stops its processes. */
export function getStack(): Promise<Stack> {
  stack ??= startStack();
  stack.catch(() => (stack = undefined));
  return stack;
}

async function startStack(): Promise<Stack> {
  const temporal = await getTestTemporal();
  const [sandboxPort, apiPort] = await freePorts(2);
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const taskQueue = uniqueTaskQueue('api');
  const sandboxDataDir = mkdtempSync(path.join(os.tmpdir(), 'fps-api-test-sandbox-'));
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
    SANDBOX_PORT: String(sandboxPort),
    SANDBOX_PUBLIC_URL: sandboxUrl,
    SANDBOX_DATA_DIR: sandboxDataDir,
    LEDGER_DATABASE_URL: `sqlite:${path.join(sandboxDataDir, 'ledger.sqlite')}`,
    SANDBOX_PENDING_DELAY_MS: '300',
    SANDBOX_IPN_RETRY_BASE_MS: '100',
    API_PORT: String(apiPort),
    API_PUBLIC_URL: apiUrl,
    API_KEYS: DEV_API_KEY,
    LOG_LEVEL: 'info',
    // Webhooks on a test's time scale: retries from 100 ms capped at 1 s, a 10-minute window.
    WEBHOOK_RETRY_INITIAL_MS: '100',
    WEBHOOK_RETRY_MAX_MS: '1000',
    WEBHOOK_RETRY_WINDOW_MS: '600000',
    WEBHOOK_TIMEOUT_MS: '2000',
    WEBHOOK_POLL_MS: '50',
    WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
  };
  const apiLogFile = path.join(config().root, 'test-artifacts', 'api-test-api.log');
  const apiLogStart = existsSync(apiLogFile) ? statSync(apiLogFile).size : 0;
  const sandbox = await spawnService({
    name: 'api-test-sandbox',
    script: 'sandbox/main.ts',
    env,
    readyUrl: `${sandboxUrl}/healthz`,
  });
  const [worker, api] = await Promise.all([
    spawnService({
      name: 'api-test-worker',
      script: 'worker/main.ts',
      env,
      readyLine: 'worker started',
      readyTimeoutMs: 120_000,
    }),
    spawnService({
      name: 'api-test-api',
      script: 'api/main.ts',
      env,
      readyUrl: `${apiUrl}/readyz`,
      logFile: apiLogFile,
    }),
  ]);
  const apiLog = () => readFileSync(apiLogFile).subarray(apiLogStart).toString('utf8');
  return {
    apiUrl,
    sandboxUrl,
    apiKey: DEV_API_KEY,
    client: await testClient(),
    taskQueue,
    sandboxDataDir,
    env,
    api,
    sandbox,
    worker,
    apiLog,
  };
}

export interface InProcessApi extends MerchantApi {
  apiUrl: string;
  apiKey: string;
  sandboxUrl: string;
  sandboxDataDir: string;
  client: Client;
  cfg: Config;
  server: Server;
  close(): Promise<void>;
}

/**
 * The merchant API app in this process (on a free port, a task queue no worker polls) with a
 * sandbox process beside it: for tests of validation, auth and callbacks that need no worker, and
 * for looking inside the app (its route table).
 */
export async function startInProcessApi(): Promise<InProcessApi> {
  const temporal = await getTestTemporal();
  const [sandboxPort, apiPort] = await freePorts(2);
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const sandboxDataDir = mkdtempSync(path.join(os.tmpdir(), 'fps-api-inproc-sandbox-'));
  const sandbox = await spawnService({
    name: 'api-inproc-sandbox',
    script: 'sandbox/main.ts',
    env: {
      SANDBOX_PORT: String(sandboxPort),
      SANDBOX_PUBLIC_URL: sandboxUrl,
      SANDBOX_DATA_DIR: sandboxDataDir,
      SANDBOX_IPN_URL: `${apiUrl}/fps/ipn`,
    },
    readyUrl: `${sandboxUrl}/healthz`,
  });
  const base = config();
  const cfg: Config = {
    ...base,
    temporal: { ...base.temporal, address: temporal.address, taskQueue: uniqueTaskQueue('api-inproc') },
    fps: {
      ...base.fps,
      cbuiEndpoint: `${sandboxUrl}/cobranded-ui/actions/start`,
      certificateUrlAllowlist: [`${sandboxUrl}/certs/`],
    },
    api: { ...base.api, port: apiPort, publicUrl: apiUrl, apiKeys: [DEV_API_KEY] },
  };
  const client = await testClient();
  // Its request log goes beside the service logs, not into mocha's output.
  const logger = pino(
    { base: { service: 'api-inproc' } },
    pino.destination({ dest: path.join(cfg.root, 'test-artifacts', 'api-inproc.log'), mkdir: true, sync: false }),
  );
  const api = createApi({ client, config: cfg, logger });
  const server: Server = await new Promise((resolve) => {
    const s = api.app.listen(apiPort, '127.0.0.1', () => resolve(s));
  });
  return {
    ...api,
    apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    apiKey: DEV_API_KEY,
    sandboxUrl,
    sandboxDataDir,
    client,
    cfg,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await sandbox.stop();
    },
  };
}

// ---- HTTP helpers ------------------------------------------------------------------------------

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function call<T = any>(
  s: Pick<Stack, 'apiUrl' | 'apiKey'>,
  method: string,
  path: string,
  options: {
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    key?: string | null;
    redirect?: 'manual' | 'follow';
  } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const key = options.key === undefined ? s.apiKey : options.key;
  if (key !== null) headers['x-api-key'] = key;
  let body: string | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${s.apiUrl}${path}`, { method, headers, body, redirect: options.redirect ?? 'manual' });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

/** Approves (or aborts) at the sandbox CBUI without a browser, as the sandbox allows for tests: the signed return URL. */
export async function cbuiDecision(authorizationUrl: string, decision: 'approve' | 'abort'): Promise<string> {
  const response = await fetch(authorizationUrl, { headers: { 'x-sandbox-decision': decision }, redirect: 'manual' });
  const location = response.headers.get('location');
  if (response.status !== 302 || !location)
    throw new Error(`CBUI decision: HTTP ${response.status} ${await response.text()}`);
  return location;
}

export async function sandboxAdmin<T = any>(s: Pick<Stack, 'sandboxUrl'>, path: string): Promise<T> {
  const response = await fetch(`${s.sandboxUrl}${path}`);
  if (!response.ok) throw new Error(`sandbox ${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

export function sandboxPrivateKey(s: Pick<Stack, 'sandboxDataDir'>): string {
  return readFileSync(path.join(s.sandboxDataDir, 'sandbox-key.pem'), 'utf8');
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** States in which an authorized instrument takes purchases. */
const READY_STATES = ['active', 'authorized'];

/** Creates an instrument and approves it at the sandbox; resolves once it takes purchases. */
export async function activeInstrument(
  s: Pick<Stack, 'apiUrl' | 'apiKey'>,
  customerId: string,
  body: Record<string, unknown>,
): Promise<{ instrumentId: string; workflowId: string; created: Answer }> {
  const created = await call(s, 'POST', `/customers/${customerId}/instruments`, { body });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const { instrumentId, workflowId, authorizationUrl } = created.body;
  const returnUrl = await cbuiDecision(authorizationUrl, 'approve');
  const returned = await fetch(returnUrl, { redirect: 'manual' });
  if (returned.status !== 303) throw new Error(`return: ${returned.status} ${await returned.text()}`);
  await until(`instrument ${instrumentId} ready`, async () => {
    const got = await call(s, 'GET', `/instruments/${instrumentId}`);
    return got.status === 200 && READY_STATES.includes(got.body.state) && got.body.pending.length === 0;
  });
  return { instrumentId, workflowId, created };
}
