// The Temporal server as production runs it (not the CLI's dev server): the pinned server binary and
// its SQL schema tool (built once with `go install`, cached like the CLI), persistence and SQL
// visibility on PostgreSQL (schemas from the server module, applied with temporal-sql-tool), all
// four services in one process with several history shards, the namespace and search attributes
// registered with the CLI the way docker-compose.yml's admin-tools job does, and the Web UI server.
//
//   const bins = await ensureTemporalServer();
//   await setupTemporalSchemas({ sqlTool: bins.sql, pg, databases });
//   const server = await startTemporalServer({ serverPath: bins.server, root, pg, databases, ports });
//   await prepareNamespace({ address: server.address, namespace: 'default' });
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { config } from '../../config';
import { ensureTemporalCli } from '../temporal-cli';
import { spawnChild, type ManagedChild } from './children';
import { SEARCH_ATTRIBUTES } from './dev-server';
import { checkGo, goInstall, goModuleDir, run, type Progress } from './go-install';
import { assertPortFree, freePortsInRange } from './ports';
import { waitForHttpOk, waitUntil } from './wait';

export type { Progress };

/** The server the pinned CLI (v1.5.1) embeds: the dev server and this one behave alike. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
/** The Web UI server module the same CLI embeds. */
export const TEMPORAL_UI_SERVER_VERSION = 'v2.42.1';
const SERVER_MODULE = 'go.temporal.io/server';
const UI_SERVER_MODULE = 'github.com/temporalio/ui-server/v2';
const MIN_GO = [1, 25] as const;
/** History shards: fixed for the life of a cluster's database; above 1 so shard ownership is exercised. */
export const NUM_HISTORY_SHARDS = 4;

const printProgress: Progress = (message) => process.stderr.write(`[temporal-server] ${message}\n`);

export interface TemporalServerBinaries {
  server: string;
  sql: string;
}

/** Where `go install` puts this project's builds of the server and its schema tool. */
export function serverCacheDir(): string {
  return path.join(config().temporal.cliCacheDir, `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

function uiCacheDir(): string {
  return path.join(config().temporal.cliCacheDir, `temporal-ui-server-${TEMPORAL_UI_SERVER_VERSION}`);
}

/** Why `bin` is not the pinned build (undefined when it is). */
async function notPinned(bin: string, expected: string): Promise<string | undefined> {
  const { ok, output } = await run(bin, ['--version']);
  if (!ok) return `\`${bin} --version\` failed: ${output.split('\n')[0] ?? ''}`;
  return output.includes(expected) ? undefined : `${bin} reports "${output}", this project needs ${expected}`;
}

/** An explicit *_PATH, else the cached build, else a fresh `go install` (once per machine). */
async function ensureBinary(options: {
  label: string;
  explicit: string;
  variable: string;
  pkg: string;
  version: string;
  gobin: string;
  exe: string;
  progress: Progress;
}): Promise<string> {
  const { label, explicit, variable, version, progress } = options;
  const expected = version.replace(/^v/, '');
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`${variable}=${explicit} does not exist`);
    const reason = await notPinned(explicit, expected);
    if (reason) throw new Error(`${variable}: ${reason}`);
    return explicit;
  }
  const cached = path.join(options.gobin, options.exe);
  if (existsSync(cached)) {
    const reason = await notPinned(cached, expected);
    if (!reason) return cached;
    progress(`rebuilding ${label}: ${reason}`);
  }
  await checkGo(MIN_GO, label, variable);
  progress(`building ${label} ${version} once (a few minutes; later starts use the cached binary)`);
  const bin = await goInstall({ ...options, progress });
  const reason = await notPinned(bin, expected);
  if (reason) throw new Error(`the freshly built ${label} is not the expected one: ${reason}`);
  return bin;
}

/** The pinned Temporal server and temporal-sql-tool (TEMPORAL_SERVER_PATH / TEMPORAL_SQL_TOOL_PATH, else built). */
export async function ensureTemporalServer(progress: Progress = printProgress): Promise<TemporalServerBinaries> {
  const { temporal } = config();
  const gobin = serverCacheDir();
  // One after the other: two `go install`s side by side would fight over 2 cores and the module cache.
  const server = await ensureBinary({
    label: 'the Temporal server',
    explicit: temporal.serverPath,
    variable: 'TEMPORAL_SERVER_PATH',
    pkg: `${SERVER_MODULE}/cmd/server`,
    version: TEMPORAL_SERVER_VERSION,
    gobin,
    exe: 'server',
    progress,
  });
  const sql = await ensureBinary({
    label: 'temporal-sql-tool',
    explicit: temporal.sqlToolPath,
    variable: 'TEMPORAL_SQL_TOOL_PATH',
    pkg: `${SERVER_MODULE}/cmd/tools/sql`,
    version: TEMPORAL_SERVER_VERSION,
    gobin,
    exe: 'sql',
    progress,
  });
  return { server, sql };
}

/** The pinned Temporal Web UI server (TEMPORAL_UI_SERVER_PATH, else built; ~15 s once its modules are cached). */
export async function ensureTemporalUiServer(progress: Progress = printProgress): Promise<string> {
  return ensureBinary({
    label: 'the Temporal Web UI server',
    explicit: config().temporal.uiServerPath,
    variable: 'TEMPORAL_UI_SERVER_PATH',
    pkg: `${UI_SERVER_MODULE}/cmd/server`,
    version: TEMPORAL_UI_SERVER_VERSION,
    gobin: uiCacheDir(),
    exe: 'server',
    progress,
  });
}

/** `schema/postgresql/v12` of the server module (from Go's module cache, downloaded if absent). */
export async function temporalSchemaDir(progress: Progress = printProgress): Promise<string> {
  const dir = path.join(await goModuleDir(SERVER_MODULE, TEMPORAL_SERVER_VERSION, progress), 'schema/postgresql/v12');
  for (const sub of ['temporal/versioned', 'visibility/versioned']) {
    if (!existsSync(path.join(dir, sub))) throw new Error(`${path.join(dir, sub)} is missing from the server module`);
  }
  return dir;
}

/** Where PostgreSQL is, as Temporal's tools and config need it. */
export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password?: string;
}

export interface TemporalDatabases {
  /** Persistence (executions, history, task queues...). */
  persistence: string;
  /** SQL visibility (workflow list queries, search attributes). */
  visibility: string;
}

export const DEFAULT_DATABASES: TemporalDatabases = { persistence: 'temporal', visibility: 'temporal_visibility' };

/**
 * What docker's auto-setup does: create both databases, `setup-schema -v 0.0` (the version tables),
 * then `update-schema` to the newest versioned schema the server module ships. Idempotent.
 */
export async function setupTemporalSchemas(options: {
  sqlTool: string;
  pg: PostgresTarget;
  databases?: TemporalDatabases;
  progress?: Progress;
}): Promise<void> {
  const { sqlTool } = options;
  const target = options.pg;
  const databases = options.databases ?? DEFAULT_DATABASES;
  const progress = options.progress ?? printProgress;
  const schemaDir = await temporalSchemaDir(progress);
  const base = ['--plugin', 'postgres12', '--ep', target.host, '--port', String(target.port), '--user', target.user];
  if (target.password) base.push('--password', target.password);
  const tool = async (db: string, args: string[], tolerate?: RegExp) => {
    const { ok, output } = await run(sqlTool, [...base, '--db', db, ...args], 120_000);
    if (!ok && !(tolerate && tolerate.test(output))) {
      throw new Error(
        `temporal-sql-tool --db ${db} ${args.join(' ')} failed:\n${output.split('\n').slice(-15).join('\n')}`,
      );
    }
    return output;
  };
  for (const [db, schema] of [
    [databases.persistence, 'temporal'],
    [databases.visibility, 'visibility'],
  ] as const) {
    await tool(db, ['create-database'], /already exists/);
    if ((await schemaVersionOf(target, db)) === undefined) await tool(db, ['setup-schema', '-v', '0.0']);
    await tool(db, ['update-schema', '-d', path.join(schemaDir, schema, 'versioned')]);
    progress(`schema ${schema} ready in database ${db}`);
  }
}

/** The schema version recorded in `db`, or undefined before setup-schema created the version table. */
async function schemaVersionOf(target: PostgresTarget, db: string): Promise<string | undefined> {
  const client = new pg.Client({ ...target, database: db });
  await client.connect();
  try {
    const { rows } = await client.query<{ curr_version: string }>(
      'SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = $1',
      [db],
    );
    return rows[0]?.curr_version;
  } catch {
    return undefined;
  } finally {
    await client.end();
  }
}

/** The ports one all-services server process binds (gRPC and ringpop membership per service). */
export interface TemporalServerPorts {
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
}

/** Temporal's own defaults (its development config); the frontend follows TEMPORAL_PORT. */
export function standardServerPorts(frontend = config().temporal.devPort): TemporalServerPorts {
  return {
    frontend,
    frontendHttp: 7243,
    frontendMembership: 6933,
    history: 7234,
    historyMembership: 6934,
    matching: 7235,
    matchingMembership: 6935,
    worker: 7239,
    workerMembership: 6939,
  };
}

/** Free ports below 32768 (Temporal keeps membership ports in a SMALLINT). */
export async function freeServerPorts(): Promise<TemporalServerPorts> {
  const p = await freePortsInRange(9, 20_000, 32_000);
  return {
    frontend: p[0],
    frontendHttp: p[1],
    frontendMembership: p[2],
    history: p[3],
    historyMembership: p[4],
    matching: p[5],
    matchingMembership: p[6],
    worker: p[7],
    workerMembership: p[8],
  };
}

/**
 * Dynamic config of the cluster. Search attributes upserted by a workflow are visible to the next
 * list query at once (as with the dev server), which tests and the UI rely on.
 */
export const DYNAMIC_CONFIG: Record<string, Array<{ value: unknown }>> = {
  'system.forceSearchAttributesCacheRefreshOnRead': [{ value: true }],
};

const ENVIRONMENT = 'cluster';

/**
 * Writes `<root>/config/cluster.yaml` (the server's static config) and the dynamic config file.
 * JSON is YAML, so no YAML library is needed. Returns the config folder.
 */
export function writeServerConfig(options: {
  root: string;
  pg: PostgresTarget;
  databases?: TemporalDatabases;
  ports: TemporalServerPorts;
  logLevel?: string;
}): string {
  const { root, ports } = options;
  const target = options.pg;
  const databases = options.databases ?? DEFAULT_DATABASES;
  const configDir = path.join(root, 'config');
  mkdirSync(configDir, { recursive: true });
  const dynamicConfigFile = path.join(configDir, 'dynamicconfig.yaml');
  writeFileSync(dynamicConfigFile, `${JSON.stringify(DYNAMIC_CONFIG, null, 2)}\n`);
  const store = (database: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName: database,
      connectAddr: `${target.host}:${target.port}`,
      connectProtocol: 'tcp',
      user: target.user,
      password: target.password ?? '',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const rpc = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: '127.0.0.1', ...extra },
  });
  const serverConfig = {
    log: { stdout: true, level: options.logLevel ?? 'warn', format: 'json' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: NUM_HISTORY_SHARDS,
      datastores: {
        'postgres-default': store(databases.persistence, 20),
        'postgres-visibility': store(databases.visibility, 10),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: rpc(ports.frontend, ports.frontendMembership, { httpPort: ports.frontendHttp }),
      history: rpc(ports.history, ports.historyMembership),
      matching: rpc(ports.matching, ports.matchingMembership),
      worker: rpc(ports.worker, ports.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${ports.frontend}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  writeFileSync(path.join(configDir, `${ENVIRONMENT}.yaml`), `${JSON.stringify(serverConfig, null, 2)}\n`);
  return configDir;
}

export interface TemporalServer {
  /** host:port of the frontend, for Connection/NativeConnection. */
  readonly address: string;
  readonly ports: TemporalServerPorts;
  /** The current process (a new one after restart). */
  readonly child: ManagedChild;
  readonly pid: number;
  readonly running: boolean;
  /** Resident memory of the server process, from /proc (Linux). */
  rssBytes(): number | undefined;
  /** SIGTERM (SIGKILL after 20 s). */
  stop(): Promise<void>;
  /** SIGKILL: a crashed server host. */
  kill9(): Promise<void>;
  /** Stops it if running, waits `downMs`, starts it again with the same config; resolves when the namespace answers. */
  restart(downMs?: number): Promise<void>;
}

export interface TemporalServerOptions {
  serverPath: string;
  /** Folder for the config (written here) and nothing else; the state lives in PostgreSQL. */
  root: string;
  pg: PostgresTarget;
  databases?: TemporalDatabases;
  ports: TemporalServerPorts;
  /** Checked before the first start, so a busy port is reported as such. */
  checkPorts?: boolean;
  /** Ready also means this namespace answers (after prepareNamespace ran once). */
  readyNamespace?: string;
  onLine?: (line: string) => void;
  detached?: boolean;
  readyTimeoutMs?: number;
  logLevel?: string;
}

/** Writes the config and starts the server; resolves once the frontend answers gRPC. */
export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServer> {
  const { ports } = options;
  const host = '127.0.0.1';
  if (options.checkPorts) {
    for (const [name, port] of Object.entries(ports)) {
      await assertPortFree(port, host, `Temporal server ${name}`, 'is another Temporal server running (`npm start`)?');
    }
  }
  writeServerConfig(options);
  const address = `${host}:${ports.frontend}`;
  let stopping = false;
  const launch = async (): Promise<ManagedChild> => {
    stopping = false;
    const child = spawnChild({
      name: 'temporal-server',
      command: options.serverPath,
      args: ['--root', options.root, '--config', 'config', '--env', ENVIRONMENT, '--allow-no-auth', 'start'],
      detached: options.detached,
      // Once we stop it, its internal workers complain about every closed poll: expected, not shown.
      onLine: (line) => !stopping && options.onLine?.(line),
    });
    try {
      await waitUntil(
        `Temporal server at ${address}`,
        () => (options.readyNamespace ? describeNamespace(address, options.readyNamespace) : systemInfo(address)),
        { timeoutMs: options.readyTimeoutMs ?? 90_000, child, intervalMs: 250 },
      );
    } catch (err) {
      stopping = true;
      await child.stop('SIGKILL');
      throw err;
    }
    return child;
  };
  let child = await launch();
  const server: TemporalServer = {
    address,
    ports,
    get child() {
      return child;
    },
    get pid() {
      return child.pid;
    },
    get running() {
      return child.running;
    },
    rssBytes: () => rssOf(child.pid),
    async stop() {
      stopping = true;
      await child.stop('SIGTERM', 20_000);
    },
    async kill9() {
      stopping = true;
      await child.kill9();
    },
    async restart(downMs = 0) {
      await server.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      child = await launch();
    },
  };
  return server;
}

/** VmRSS of a process in bytes (Linux), undefined elsewhere or once it is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function withConnection<T>(
  address: string,
  fn: (c: import('@temporalio/client').Connection) => Promise<T>,
): Promise<T> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: importers that never start a server skip the SDK
  const { Connection } = require('@temporalio/client') as typeof import('@temporalio/client');
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

function systemInfo(address: string): Promise<unknown> {
  return withConnection(address, (c) => c.workflowService.getSystemInfo({}));
}

function describeNamespace(address: string, namespace: string): Promise<unknown> {
  return withConnection(address, (c) => c.workflowService.describeNamespace({ namespace }));
}

/**
 * What docker-compose.yml's temporal-admin-tools job does, with the pinned CLI: create the
 * namespace (auto-setup does that there) and register each search attribute the workflows set.
 * Idempotent; resolves once the namespace takes list queries on them.
 */
export async function prepareNamespace(options: {
  address: string;
  namespace: string;
  retention?: string;
  progress?: Progress;
}): Promise<void> {
  const { address, namespace } = options;
  const progress = options.progress ?? printProgress;
  const cli = await ensureTemporalCli(progress);
  const temporal = async (args: string[], tolerate?: RegExp) => {
    const { ok, output } = await run(cli, ['operator', ...args, '--address', address], 60_000);
    if (!ok && !(tolerate && tolerate.test(output))) {
      throw new Error(`temporal operator ${args.join(' ')} failed: ${output}`);
    }
    return output;
  };
  const described = await run(cli, [
    'operator',
    'namespace',
    'describe',
    '--namespace',
    namespace,
    '--address',
    address,
  ]);
  if (!described.ok) {
    await temporal(
      ['namespace', 'create', '--namespace', namespace, '--retention', options.retention ?? '72h'],
      /already exists|AlreadyExists/i,
    );
    progress(`namespace ${namespace} created`);
  }
  // A new namespace reaches every service's namespace cache within seconds.
  await waitUntil(`namespace ${namespace}`, () => describeNamespace(address, namespace), {
    timeoutMs: 60_000,
    intervalMs: 500,
  });
  const listed = await waitUntil(
    'search attribute list',
    async () => temporal(['search-attribute', 'list', '--namespace', namespace]),
    { timeoutMs: 60_000, intervalMs: 1_000 },
  );
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    if (new RegExp(`\\b${name}\\b`).test(listed)) continue;
    await waitUntil(
      `search attribute ${name}`,
      () =>
        temporal(
          ['search-attribute', 'create', '--namespace', namespace, '--name', name, '--type', type],
          /already exists|AlreadyExists/i,
        ),
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    progress(`search attribute ${name} (${type}) registered`);
  }
  // Visible to queries: a list over the attributes parses (an unknown name fails the query).
  const query = Object.keys(SEARCH_ATTRIBUTES)
    .map((name) => `${name} = "probe"`)
    .join(' AND ');
  await waitUntil(
    'search attributes queryable',
    () => withConnection(address, (c) => c.workflowService.listWorkflowExecutions({ namespace, query, pageSize: 1 })),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

export interface TemporalUi {
  url: string;
  child: ManagedChild;
  stop(): Promise<void>;
}

/** The Web UI server in front of `temporalAddress`, on 127.0.0.1:`port`. */
export async function startTemporalUi(options: {
  uiServerPath: string;
  root: string;
  temporalAddress: string;
  port: number;
  namespace: string;
  checkPort?: boolean;
  onLine?: (line: string) => void;
  detached?: boolean;
}): Promise<TemporalUi> {
  const host = '127.0.0.1';
  if (options.checkPort) await assertPortFree(options.port, host, 'Temporal Web UI', 'set TEMPORAL_UI_PORT');
  const configDir = path.join(options.root, 'ui-config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    path.join(configDir, `${ENVIRONMENT}.yaml`),
    `${JSON.stringify(
      {
        temporalGrpcAddress: options.temporalAddress,
        host,
        port: options.port,
        enableUi: true,
        defaultNamespace: options.namespace,
        cors: {
          cookieInsecure: true,
          allowOrigins: [`http://localhost:${options.port}`, `http://${host}:${options.port}`],
        },
        refreshInterval: '1m',
        notifyOnNewVersion: false,
        hideLogs: true,
      },
      null,
      2,
    )}\n`,
  );
  const child = spawnChild({
    name: 'temporal-ui',
    command: options.uiServerPath,
    args: ['--root', options.root, '--config', 'ui-config', '--env', ENVIRONMENT, 'start'],
    detached: options.detached,
    onLine: options.onLine,
  });
  const url = `http://${host}:${options.port}`;
  try {
    await waitForHttpOk(`${url}/`, { child, timeoutMs: 30_000 });
  } catch (err) {
    await child.stop('SIGKILL');
    throw err;
  }
  return { url, child, stop: async () => void (await child.stop('SIGTERM', 5_000)) };
}
