// The whole stack as separate processes — sandbox, worker, API — for tests that crash, restart or
// inspect them: chaos (kill -9 the worker, restart the sandbox or Temporal itself) and secrets
// (distinctive credentials, every log file). test/api/stack.ts runs its worker inside mocha on the
// run's in-memory server with the development credentials, which none of these tests can use; its
// HTTP helpers (call, cbuiDecision, activeInstrument...) are reused as they are.
//
// Optionally with its own Temporal dev server (SQLite file, fixed port, restartable) and an IPN
// relay: a reverse proxy in front of the API (API_PUBLIC_URL points at it, so FPS's signatures over
// `${API_PUBLIC_URL}/fps/ipn` still verify) that acknowledges each IPN at once and forwards it
// later, out of order, maybe twice.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { config, DEV_ACCESS_KEY_ID, DEV_API_KEY, DEV_SECRET_KEY } from '../../config';
import { ensureTemporalCli, startDevServer, type DevServer } from '../../scripts/temporal-cli';
import { freePorts, spawnService, type Service } from './processes';
import { getTestTemporal, uniqueTaskQueue } from './temporal';

export interface ProcessStackOptions {
  /** The stack's ledger store (LEDGER_DATABASE_URL); default: a SQLite file in its sandbox data folder. */
  ledgerUrl?: string;
  /** Prefix of log files (test-artifacts/<name>-sandbox.log, ...). */
  name: string;
  /** 'own': a dev server for this stack alone, persisted in a SQLite file, restartable. Default: the run's. */
  temporal?: 'shared' | 'own';
  /** Credentials (default: the development ones). */
  fpsAccessKeyId?: string;
  fpsSecretKey?: string;
  apiKey?: string;
  /** Put the IPN relay between the sandbox and the API. */
  ipnRelay?: boolean;
  /** Extra environment, per process. */
  sandboxEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
  apiEnv?: Record<string, string>;
}

export interface RelaySettings {
  /** Forward each IPN after a random delay in [min, max] ms (independently: this reorders them). */
  delayMs: [number, number];
  /** Probability of forwarding an IPN a second time (after another random delay). */
  duplicate: number;
}

export interface IpnRelay {
  readonly url: string;
  settings: RelaySettings;
  readonly stats: {
    received: number;
    forwarded: number;
    duplicated: number;
    reordered: number;
    forwardRetries: number;
  };
  /** Resolves once every IPN received so far has been forwarded. */
  drained(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface OwnTemporal {
  address: string;
  namespace: string;
  dbFile: string;
  server: DevServer;
  /** SIGTERM the server, start it again on the same port and SQLite file. */
  restart(downMs?: number): Promise<void>;
}

export interface ProcessStack {
  name: string;
  apiUrl: string;
  /** API_PUBLIC_URL: the relay when there is one, else apiUrl. */
  publicUrl: string;
  sandboxUrl: string;
  apiKey: string;
  fpsSecretKey: string;
  taskQueue: string;
  namespace: string;
  temporalAddress: string;
  /** The environment the three processes share (ports, URLs, task queue, credentials). */
  env: Record<string, string>;
  client: Client;
  sandboxDataDir: string;
  sandbox: Service;
  worker: Service;
  api: Service;
  relay?: IpnRelay;
  ownTemporal?: OwnTemporal;
  /** Stops everything this stack started (the global teardown also stops its services). */
  stop(): Promise<void>;
}

export async function startProcessStack(options: ProcessStackOptions): Promise<ProcessStack> {
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    return await start(options, cleanup);
  } catch (err) {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    throw err;
  }
}

async function start(options: ProcessStackOptions, cleanup: Array<() => Promise<unknown>>): Promise<ProcessStack> {
  const root = config().root;
  const logFile = (what: string) => path.join(root, 'test-artifacts', `${options.name}-${what}.log`);
  const fpsAccessKeyId = options.fpsAccessKeyId ?? DEV_ACCESS_KEY_ID;
  const fpsSecretKey = options.fpsSecretKey ?? DEV_SECRET_KEY;
  const apiKey = options.apiKey ?? DEV_API_KEY;

  let ownTemporal: OwnTemporal | undefined;
  let temporalAddress: string;
  let namespace: string;
  if (options.temporal === 'own') {
    ownTemporal = await startOwnTemporal(options.name, logFile('temporal'));
    cleanup.push(() => ownTemporal!.server.stop());
    temporalAddress = ownTemporal.address;
    namespace = ownTemporal.namespace;
  } else {
    const t = await getTestTemporal();
    temporalAddress = t.address;
    namespace = t.namespace;
  }

  const [sandboxPort, apiPort] = await freePorts(2);
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  let relay: IpnRelay | undefined;
  if (options.ipnRelay) {
    relay = await startIpnRelay(apiUrl);
    cleanup.push(() => relay!.close());
  }
  const publicUrl = relay?.url ?? apiUrl;
  const taskQueue = uniqueTaskQueue(options.name);
  const sandboxDataDir = mkdtempSync(path.join(os.tmpdir(), `fps-${options.name}-sandbox-`));
  cleanup.push(async () => rmSync(sandboxDataDir, { recursive: true, force: true }));

  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
    SANDBOX_PORT: String(sandboxPort),
    SANDBOX_PUBLIC_URL: sandboxUrl,
    SANDBOX_DATA_DIR: sandboxDataDir,
    LEDGER_DATABASE_URL: options.ledgerUrl ?? `sqlite:${path.join(sandboxDataDir, 'ledger.sqlite')}`,
    SANDBOX_ACCESS_KEYS: `${fpsAccessKeyId}:${fpsSecretKey}`,
    SANDBOX_IPN_URL: `${publicUrl}/fps/ipn`,
    SANDBOX_PENDING_DELAY_MS: '500',
    SANDBOX_IPN_RETRY_BASE_MS: '100',
    SANDBOX_IPN_RETRY_MAX_MS: '1000',
    API_PORT: String(apiPort),
    API_PUBLIC_URL: publicUrl,
    API_KEYS: apiKey,
    FPS_ENDPOINT: `${sandboxUrl}/`,
    FPS_CBUI_ENDPOINT: `${sandboxUrl}/cobranded-ui/actions/start`,
    FPS_CERTIFICATE_URL_ALLOWLIST: `${sandboxUrl}/certs/`,
    FPS_ACCESS_KEY_ID: fpsAccessKeyId,
    FPS_SECRET_KEY: fpsSecretKey,
    LOG_LEVEL: 'info',
  };
  const sandbox = await spawnService({
    name: `${options.name}-sandbox`,
    script: 'sandbox/main.ts',
    env: { ...env, ...options.sandboxEnv },
    readyUrl: `${sandboxUrl}/healthz`,
  });
  cleanup.push(() => sandbox.stop());
  const [worker, api] = await Promise.all([
    spawnService({
      name: `${options.name}-worker`,
      script: 'worker/main.ts',
      env: { ...env, ...options.workerEnv },
      readyLine: 'worker started',
      readyTimeoutMs: 90_000,
    }),
    spawnService({
      name: `${options.name}-api`,
      script: 'api/main.ts',
      env: { ...env, ...options.apiEnv },
      readyUrl: `${apiUrl}/readyz`,
      readyTimeoutMs: 60_000,
    }),
  ]);
  cleanup.push(
    () => worker.stop(),
    () => api.stop(),
  );

  const connection = await Connection.connect({ address: temporalAddress });
  cleanup.push(() => connection.close());
  const client = new Client({ connection, namespace });

  const stack: ProcessStack = {
    name: options.name,
    apiUrl,
    publicUrl,
    sandboxUrl,
    apiKey,
    fpsSecretKey,
    taskQueue,
    namespace,
    temporalAddress,
    env,
    client,
    sandboxDataDir,
    sandbox,
    worker,
    api,
    relay,
    ownTemporal,
    async stop() {
      await Promise.allSettled([api.stop(), worker.stop()]);
      await sandbox.stop().catch(() => undefined);
      await relay?.close();
      await connection.close().catch(() => undefined);
      await ownTemporal?.server.stop();
      rmSync(sandboxDataDir, { recursive: true, force: true });
      if (ownTemporal) rmSync(path.dirname(ownTemporal.dbFile), { recursive: true, force: true });
    },
  };
  return stack;
}

async function startOwnTemporal(name: string, logFile: string): Promise<OwnTemporal> {
  const cliPath = await ensureTemporalCli();
  const [port] = await freePorts(1);
  const dir = mkdtempSync(path.join(os.tmpdir(), `fps-${name}-temporal-`));
  const dbFile = path.join(dir, 'temporal.sqlite');
  const namespace = config().temporal.namespace;
  const launch = () => startDevServer({ cliPath, port, headless: true, dbFile, namespace, logFile });
  const own: OwnTemporal = {
    address: `127.0.0.1:${port}`,
    namespace,
    dbFile,
    server: await launch(),
    async restart(downMs = 0) {
      await own.server.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      own.server = await launch();
    },
  };
  return own;
}

// ---- the IPN relay ---------------------------------------------------------------------------------

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A reverse proxy to `target` that delays, reorders and duplicates POST /fps/ipn. */
export async function startIpnRelay(target: string): Promise<IpnRelay> {
  // Read through `control`, so a test may replace `relay.settings` as a whole.
  const control: { settings: RelaySettings } = { settings: { delayMs: [0, 0], duplicate: 0 } };
  const stats = { received: 0, forwarded: 0, duplicated: 0, reordered: 0, forwardRetries: 0 };
  let closed = false;
  let outstanding = 0;
  let sequence = 0;
  let lastForwarded = -1;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  const randomDelay = () => {
    const [min, max] = control.settings.delayMs;
    return min + Math.random() * (max - min);
  };

  /** Delivers until the API answers 2xx (FPS's at-least-once), like the sandbox would. */
  async function forward(body: Buffer, contentType: string, seq: number, delayMs: number): Promise<void> {
    outstanding++;
    try {
      await later(delayMs);
      for (let attempt = 0; !closed; attempt++) {
        try {
          const response = await fetch(`${target}/fps/ipn`, {
            method: 'POST',
            headers: { 'content-type': contentType },
            body,
            signal: AbortSignal.timeout(30_000),
          });
          await response.arrayBuffer();
          if (response.ok) break;
        } catch {
          // The API is restarting or Temporal is away: retry.
        }
        stats.forwardRetries++;
        await later(Math.min(2_000, 100 * 2 ** attempt));
      }
      stats.forwarded++;
      if (seq < lastForwarded) stats.reordered++;
      lastForwarded = Math.max(lastForwarded, seq);
    } finally {
      outstanding--;
    }
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      try {
        const body = await readBody(req);
        if (req.method === 'POST' && req.url === '/fps/ipn') {
          stats.received++;
          const seq = sequence++;
          const contentType = String(req.headers['content-type'] ?? 'application/x-www-form-urlencoded');
          void forward(body, contentType, seq, randomDelay());
          if (Math.random() < control.settings.duplicate) {
            stats.duplicated++;
            void forward(body, contentType, seq, randomDelay());
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true,"relayed":true}');
          return;
        }
        // Everything else (the buyer's return from the CBUI): passed through as it is.
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers))
          if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers[name] = value;
        const upstream = await fetch(`${target}${req.url}`, {
          method: req.method,
          headers,
          body: body.length ? body : undefined,
          redirect: 'manual',
        });
        const out: Record<string, string> = {};
        upstream.headers.forEach((value, name) => {
          if (
            name !== 'content-encoding' &&
            name !== 'transfer-encoding' &&
            name !== 'connection' &&
            name !== 'content-length'
          )
            out[name] = value;
        });
        res.writeHead(upstream.status, out).end(Buffer.from(await upstream.arrayBuffer()));
      } catch (err) {
        res.writeHead(502).end(String(err));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    get settings() {
      return control.settings;
    },
    set settings(value: RelaySettings) {
      control.settings = value;
    },
    stats,
    async drained(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (outstanding > 0) {
        if (Date.now() > deadline) throw new Error(`IPN relay: ${outstanding} notifications still not forwarded`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
