// Starts `temporal server start-dev` (the real Temporal server, SQLite-backed, optional Web UI) as a
// child process, waits until it serves the namespace, and stops it cleanly.
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { config } from '../../config';
import { spawnChild, type ManagedChild } from './children';
import { assertPortFree, freePorts } from './ports';
import { waitUntil } from './wait';

/**
 * Search attributes the workflows use; registered at server start. Keep in sync with the
 * `defineSearchAttributeKey` calls in workflows/ (a Temporal Cloud namespace needs them too).
 */
export const SEARCH_ATTRIBUTES = {
  CustomerId: 'Keyword',
  InstrumentType: 'Keyword',
  InstrumentState: 'Keyword',
} as const;

export interface DevServerOptions {
  /** The `temporal` binary; see ensureTemporalCli() in scripts/temporal-cli.ts. */
  cliPath: string;
  /** gRPC port; a free one when omitted. */
  port?: number;
  ip?: string;
  /** Web UI port; a free one when omitted. Ignored when headless. */
  uiPort?: number;
  headless?: boolean;
  /** Persistent SQLite file; in-memory (lost on exit) when omitted or when inMemory is set. */
  dbFile?: string;
  inMemory?: boolean;
  /** Created at start (the "default" namespace always exists). */
  namespace?: string;
  /** Server output is appended here... */
  logFile?: string;
  /** ...and/or handed to this, e.g. to print it prefixed. */
  onLine?: (line: string) => void;
  /** See ChildOptions.detached. */
  detached?: boolean;
  readyTimeoutMs?: number;
}

export interface DevServer {
  /** host:port for Connection/NativeConnection. */
  address: string;
  namespace: string;
  /** undefined when headless. */
  uiUrl: string | undefined;
  metricsUrl: string;
  pid: number;
  /** Time from spawn to answering DescribeNamespace. */
  startupMs: number;
  child: ManagedChild;
  /** SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void>;
}

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const namespace = options.namespace ?? config().temporal.namespace;
  const persistent = Boolean(options.dbFile) && !options.inMemory;
  const [freeGrpc, freeUi, httpPort, metricsPort] = await freePorts(4, ip);
  const port = options.port ?? freeGrpc;
  const uiPort = options.headless ? undefined : (options.uiPort ?? freeUi);

  // Fixed ports that are taken usually mean a server from an earlier run: say so up front.
  const busyHint =
    'is another Temporal server running (an earlier `npm start`)? Stop it, or set TEMPORAL_ADDRESS to use it';
  if (options.port) await assertPortFree(port, ip, 'Temporal gRPC', busyHint);
  if (options.uiPort && uiPort) await assertPortFree(uiPort, ip, 'Temporal Web UI', busyHint);

  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--namespace',
    namespace,
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    // What Temporal's own SDK CI uses: the SQLite store is the bottleneck under load.
    '--sqlite-pragma',
    'journal_mode=WAL',
    '--sqlite-pragma',
    'synchronous=OFF',
    '--log-level',
    'warn',
    // A search attribute upserted by a workflow is visible to the next query at once, not after
    // the server's cache refresh: tests (and the UI) read what was just written.
    '--dynamic-config-value',
    'system.forceSearchAttributesCacheRefreshOnRead=true',
    ...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort)]),
  ];
  if (persistent) {
    mkdirSync(path.dirname(options.dbFile!), { recursive: true });
    args.push('--db-filename', options.dbFile!);
  }

  let log: ReturnType<typeof createWriteStream> | undefined;
  if (options.logFile) {
    mkdirSync(path.dirname(options.logFile), { recursive: true });
    log = createWriteStream(options.logFile, { flags: 'a' });
    log.write(`--- ${new Date().toISOString()} temporal ${args.join(' ')}\n`);
  }

  const started = Date.now();
  // Once we stop it, the server's internal workers warn about every closed poll: expected, so they
  // go to the log file only.
  let stopping = false;
  const child = spawnChild({
    name: 'temporal',
    command: options.cliPath,
    args,
    detached: options.detached,
    onLine: (line) => {
      log?.write(`${line}\n`);
      if (!stopping) options.onLine?.(line);
    },
  });
  void child.exited.then(() => log?.end());

  const address = `${ip}:${port}`;
  const stop = async () => {
    stopping = true;
    await child.stop('SIGTERM', 5_000);
  };
  try {
    await waitUntil(`Temporal dev server at ${address}`, () => describeNamespace(address, namespace), {
      timeoutMs: options.readyTimeoutMs ?? 30_000,
      child,
      intervalMs: 50,
    });
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    address,
    namespace,
    uiUrl: uiPort === undefined ? undefined : `http://${ip}:${uiPort}`,
    metricsUrl: `http://${ip}:${metricsPort}/metrics`,
    pid: child.pid,
    startupMs: Date.now() - started,
    child,
    stop,
  };
}

/** Ready means: gRPC answers and the namespace exists (it is created just after the port opens). */
async function describeNamespace(address: string, namespace: string): Promise<void> {
  // Loaded on first use: most importers (e.g. unit-test runs) never start a server.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy on purpose (see above)
  const { Connection } = require('@temporalio/client') as typeof import('@temporalio/client');
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    await connection.workflowService.describeNamespace({ namespace });
  } finally {
    await connection.close();
  }
}
