// The production topology on one machine, without Docker: PostgreSQL (Temporal's persistence and
// visibility, and the ledger store's own database), the Temporal server (all services, several
// shards) with its Web UI, the FPS sandbox, N workers and N API processes. The same components and
// environment variables as docker-compose.yml (test/unit/cluster-topology.test.ts holds the two
// together). Used by `npm run start:cluster` (scripts/cluster.ts), test/cluster and bench/cluster.ts.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { config, DEV_ACCESS_KEY_ID, DEV_API_KEY, DEV_SECRET_KEY } from '../../config';
import { spawnChild, tsxCommand, type ExitInfo, type ManagedChild } from './children';
import { assertPortFree, freePorts } from './ports';
import { startPostgres, type PostgresCluster } from './postgres';
import {
  ensureTemporalServer,
  ensureTemporalUiServer,
  freeServerPorts,
  prepareNamespace,
  setupTemporalSchemas,
  standardServerPorts,
  startTemporalServer,
  startTemporalUi,
  type Progress,
  type TemporalServer,
  type TemporalUi,
} from './temporal-server';
import { waitForHttpOk } from './wait';

/** The ledger store's database on the cluster's PostgreSQL (docker-compose.yml: POSTGRES_DB). */
export const LEDGER_DATABASE = 'ledger';

export type ComposeService = 'sandbox' | 'worker' | 'api';

/** One process of the topology: a replica of a docker-compose.yml app service. */
export interface ServicePlan {
  /** Process name, e.g. `worker-2`. */
  name: string;
  /** The docker-compose.yml service it is a replica of. */
  composeService: ComposeService;
  /** What compose runs: `npm run <npmScript>`; `script` is that npm script's entry file. */
  npmScript: string;
  script: string;
  /** Its whole configuration: the variables compose sets for that service, with local values. */
  env: Record<string, string>;
  /** Ready when GET answers 200 (HTTP services)... */
  healthUrl?: string;
  /** ...or when it prints this (the worker). */
  readyLine?: string;
  /** The port it listens on, checked free before it starts. */
  port?: number;
  /** SIGTERM grace before SIGKILL. */
  graceMs: number;
}

export interface PlanInput {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  uiUrl: string;
  sandboxPort: number;
  sandboxDataDir: string;
  /** One API process per port; the first one's URL is API_PUBLIC_URL (what a load balancer would be). */
  apiPorts: number[];
  workers: number;
  ledgerUrl: string;
  apiKey: string;
  storeSessionSecret: string;
  fpsAccessKeyId: string;
  fpsSecretKey: string;
  logLevel: string;
  pendingDelayMs: number;
}

/**
 * The processes and their environment. Variable for variable what docker-compose.yml sets for the
 * same service; only the values are local (127.0.0.1 and ports instead of container names).
 */
export function planServices(input: PlanInput): ServicePlan[] {
  const local = '127.0.0.1';
  const sandboxUrl = `http://${local}:${input.sandboxPort}`;
  const apiPublicUrl = `http://${local}:${input.apiPorts[0]}`;
  // docker-compose.yml's x-app-environment.
  const common = {
    LOG_LEVEL: input.logLevel,
    TEMPORAL_ADDRESS: input.temporalAddress,
    TEMPORAL_NAMESPACE: input.namespace,
    TEMPORAL_TASK_QUEUE: input.taskQueue,
    TEMPORAL_UI_URL: input.uiUrl,
    API_PUBLIC_URL: apiPublicUrl,
    SANDBOX_PUBLIC_URL: sandboxUrl,
    FPS_ACCESS_KEY_ID: input.fpsAccessKeyId,
    FPS_SECRET_KEY: input.fpsSecretKey,
  };
  const sandbox: ServicePlan = {
    name: 'sandbox',
    composeService: 'sandbox',
    npmScript: 'sandbox',
    script: 'sandbox/main.ts',
    env: {
      ...common,
      SANDBOX_HOST: local,
      SANDBOX_PORT: String(input.sandboxPort),
      SANDBOX_DATA_DIR: input.sandboxDataDir,
      SANDBOX_IPN_URL: `${apiPublicUrl}/fps/ipn`,
      SANDBOX_PENDING_DELAY_MS: String(input.pendingDelayMs),
    },
    healthUrl: `${sandboxUrl}/healthz`,
    port: input.sandboxPort,
    graceMs: 5_000,
  };
  const workers = Array.from({ length: input.workers }, (_, i): ServicePlan => ({
    name: `worker-${i + 1}`,
    composeService: 'worker',
    npmScript: 'worker',
    script: 'worker/main.ts',
    env: {
      ...common,
      FPS_ENDPOINT: `${sandboxUrl}/`,
      LEDGER_DATABASE_URL: input.ledgerUrl,
      // Several workers on one machine: each takes a free port for its /metrics (logged at start).
      WORKER_METRICS_HOST: local,
      WORKER_METRICS_PORT: '0',
    },
    readyLine: 'worker started',
    graceMs: 15_000,
  }));
  const apis = input.apiPorts.map((port, i): ServicePlan => ({
    name: `api-${i + 1}`,
    composeService: 'api',
    npmScript: 'api',
    script: 'api/main.ts',
    env: {
      ...common,
      API_HOST: local,
      API_PORT: String(port),
      API_KEYS: input.apiKey,
      STORE_SESSION_SECRET: input.storeSessionSecret,
      LEDGER_DATABASE_URL: input.ledgerUrl,
      // As in compose: webhook endpoints must be public addresses (every API replica delivers).
      WEBHOOK_ALLOW_PRIVATE_URLS: 'false',
    },
    healthUrl: `http://${local}:${port}/readyz`,
    port,
    graceMs: 12_000,
  }));
  return [sandbox, ...workers, ...apis];
}

/** The plan with this machine's configuration (config/index.ts) and the standard ports. */
export function defaultPlanInput(overrides: Partial<PlanInput> = {}): PlanInput {
  const cfg = config();
  return {
    temporalAddress: `127.0.0.1:${cfg.temporal.devPort}`,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.temporal.taskQueue,
    uiUrl: cfg.temporal.uiUrl,
    sandboxPort: cfg.sandbox.port,
    sandboxDataDir: path.join(cfg.cluster.dataDir, 'sandbox'),
    apiPorts: [cfg.api.port, cfg.api.port + 1],
    workers: 2,
    ledgerUrl: `postgres://postgres@127.0.0.1:5432/${LEDGER_DATABASE}`,
    apiKey: cfg.api.apiKeys[0] ?? DEV_API_KEY,
    storeSessionSecret: cfg.api.storeSessionSecret || 'generated-per-cluster',
    fpsAccessKeyId: cfg.fps.accessKeyId || DEV_ACCESS_KEY_ID,
    fpsSecretKey: cfg.fps.secretKey || DEV_SECRET_KEY,
    logLevel: cfg.logLevel,
    pendingDelayMs: cfg.sandbox.pendingDelayMs,
    ...overrides,
  };
}

/** A running process of the plan: stop, kill -9, restart (same plan). */
export class ClusterService {
  private child: ManagedChild | undefined;
  /** Set while we stop it on purpose, so its exit is not reported as unexpected. */
  private expectingExit = false;

  constructor(
    readonly plan: ServicePlan,
    private readonly root: string,
    private readonly hooks: {
      onLine?: (name: string, line: string) => void;
      onUnexpectedExit?: (name: string, info: ExitInfo) => void;
      detached?: boolean;
      extraEnv?: Record<string, string>;
    },
  ) {}

  get name(): string {
    return this.plan.name;
  }
  get pid(): number | undefined {
    return this.child?.running ? this.child.pid : undefined;
  }
  get running(): boolean {
    return this.child?.running ?? false;
  }
  tail(lines?: number): string {
    return this.child?.tail(lines) ?? '';
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { command, args } = tsxCommand(path.join(this.root, this.plan.script));
    this.expectingExit = false;
    const child = spawnChild({
      name: this.plan.name,
      command,
      args,
      env: { ...process.env, ...this.plan.env, ...this.hooks.extraEnv },
      cwd: this.root,
      detached: this.hooks.detached,
      onLine: (line) => this.hooks.onLine?.(this.plan.name, line),
    });
    this.child = child;
    void child.exited.then((info) => {
      if (!this.expectingExit && this.child === child) this.hooks.onUnexpectedExit?.(this.plan.name, info);
    });
    try {
      if (this.plan.healthUrl) await waitForHttpOk(this.plan.healthUrl, { child, timeoutMs: 90_000 });
      // The worker bundles the workflow code before it polls: allow for a slow first start on 2 cores.
      if (this.plan.readyLine) await child.waitForLine(this.plan.readyLine, 180_000);
    } catch (err) {
      this.expectingExit = true;
      await child.stop('SIGKILL');
      throw err;
    }
  }

  async stop(): Promise<ExitInfo | undefined> {
    if (!this.child?.running) return this.child?.exitInfo;
    this.expectingExit = true;
    return this.child.stop('SIGTERM', this.plan.graceMs);
  }

  async kill9(): Promise<ExitInfo | undefined> {
    if (!this.child?.running) return this.child?.exitInfo;
    this.expectingExit = true;
    return this.child.kill9();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

export interface ClusterOptions {
  /** Keep state here across runs (PostgreSQL data, sandbox ledger, configs); default: a temp folder removed on stop. */
  dataDir?: string;
  /** 'standard': TEMPORAL_PORT (7233), TEMPORAL_UI_PORT, SANDBOX_PORT, API_PORT and API_PORT+1; 'free': free ports. */
  ports: 'standard' | 'free';
  workers?: number;
  apis?: number;
  /** The Temporal Web UI server (default true); if it cannot be built the cluster runs without it. */
  ui?: boolean;
  /** Task queue (default TEMPORAL_TASK_QUEUE). */
  taskQueue?: string;
  /** Added to the plan's environment, per compose service (e.g. shorter sandbox delays in tests). */
  extraEnv?: Partial<Record<ComposeService, Record<string, string>>>;
  /** Every output line of every part. */
  onLine?: (name: string, line: string) => void;
  /** A part exited without being asked to. */
  onUnexpectedExit?: (name: string, info: ExitInfo) => void;
  progress?: Progress;
  /** Own process groups (a terminal's Ctrl-C reaches only the supervisor). */
  detached?: boolean;
}

export interface Cluster {
  postgres: PostgresCluster;
  temporal: TemporalServer;
  ui: TemporalUi | undefined;
  /** Why there is no UI, when there is none. */
  uiProblem: string | undefined;
  sandbox: ClusterService;
  workers: ClusterService[];
  apis: ClusterService[];
  /** Every planned process, sandbox first. */
  services: ClusterService[];
  plan: ServicePlan[];
  apiUrls: string[];
  sandboxUrl: string;
  uiUrl: string;
  ledgerUrl: string;
  apiKey: string;
  namespace: string;
  taskQueue: string;
  address: string;
  dataDir: string;
  /** Stops every part, last started first; removes a temporary data folder. */
  stop(): Promise<void>;
}

/** CREATE DATABASE unless it exists. */
async function ensureDatabase(postgres: PostgresCluster, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgres.url('postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await postgres.createDatabase(name);
  } finally {
    await client.end();
  }
}

/** Starts the whole topology in dependency order; on failure, stops what it had started. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const cfg = config();
  const progress = options.progress ?? ((m: string) => process.stderr.write(`[cluster] ${m}\n`));
  const temporary = !options.dataDir;
  const dataDir = options.dataDir ? path.resolve(options.dataDir) : mkdtempSync(path.join(os.tmpdir(), 'fps-cluster-'));
  mkdirSync(dataDir, { recursive: true });
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (let stop = stops.pop(); stop; stop = stops.pop()) await stop().catch(() => undefined);
    if (temporary) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // Binaries first: on a fresh machine this is the long part (go install), and nothing runs yet.
    const bins = await ensureTemporalServer(progress);
    let uiServerPath: string | undefined;
    let uiProblem: string | undefined;
    if (options.ui !== false) {
      try {
        uiServerPath = await ensureTemporalUiServer(progress);
      } catch (err) {
        uiProblem = `the Temporal Web UI server could not be built (${(err as Error).message.split('\n')[0]}); use the CLI's UI: \`npm run temporal -- server start-dev\` embeds one`;
        progress(uiProblem);
      }
    }

    const standard = options.ports === 'standard';
    const serverPorts = standard ? standardServerPorts() : await freeServerPorts();
    const apiCount = options.apis ?? 2;
    const [freeSandbox, freeUi, ...freeApis] = await freePorts(2 + apiCount);
    const sandboxPort = standard ? cfg.sandbox.port : freeSandbox;
    const uiPort = standard ? cfg.temporal.uiPort : freeUi;
    const apiPorts = standard ? Array.from({ length: apiCount }, (_, i) => cfg.api.port + i) : freeApis;
    if (standard) {
      // Before anything starts: a busy port usually means an `npm start` or an earlier cluster.
      for (const [what, port] of [
        ['FPS sandbox (SANDBOX_PORT)', sandboxPort],
        ['Temporal Web UI (TEMPORAL_UI_PORT)', uiPort],
        ...apiPorts.map((p, i) => [`API ${i + 1} (API_PORT${i ? ` + ${i}` : ''})`, p] as const),
      ] as const) {
        await assertPortFree(port, '127.0.0.1', what, 'is `npm start` or another cluster running?');
      }
    }

    let postgres: PostgresCluster;
    try {
      postgres = await startPostgres({
        dataDir: temporary ? undefined : path.join(dataDir, 'postgres'),
        // Temporal's pools, two ledger pools per worker and API, and the benchmarks' readers.
        settings: { max_connections: '300', shared_buffers: '256MB' },
        onLine: (line) => options.onLine?.('postgres', line),
      });
    } catch (err) {
      throw new Error(
        `PostgreSQL did not start in ${dataDir}: ${(err as Error).message}\n(as root the server runs as the user postgres, which must be able to enter that folder: set CLUSTER_DATA_DIR elsewhere, e.g. under /tmp)`,
        { cause: err },
      );
    }
    stops.push(() => postgres.stop({ keepData: !temporary }));
    progress(`PostgreSQL ${postgres.url()} (${temporary ? 'temporary' : path.join(dataDir, 'postgres')})`);
    const target = { host: postgres.host, port: postgres.port, user: postgres.user };
    await setupTemporalSchemas({ sqlTool: bins.sql, pg: target, progress });
    await ensureDatabase(postgres, LEDGER_DATABASE);
    const ledgerUrl = postgres.url(LEDGER_DATABASE);
    // Migrate once here, so the four processes do not race to create the ledger's tables.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: the store loads better-sqlite3 too
    const { openLedgerDb } = require('../../store/db') as typeof import('../../store/db');
    await (await openLedgerDb(ledgerUrl)).close();

    const temporalRoot = path.join(dataDir, 'temporal');
    const temporal = await startTemporalServer({
      serverPath: bins.server,
      root: temporalRoot,
      pg: target,
      ports: serverPorts,
      checkPorts: standard,
      onLine: (line) => options.onLine?.('temporal', line),
      detached: options.detached,
    });
    stops.push(() => temporal.stop());
    const namespace = cfg.temporal.namespace;
    await prepareNamespace({ address: temporal.address, namespace, progress });
    progress(`Temporal server ${temporal.address} (pid ${temporal.pid}), namespace ${namespace} ready`);

    let ui: TemporalUi | undefined;
    if (uiServerPath) {
      try {
        ui = await startTemporalUi({
          uiServerPath,
          root: temporalRoot,
          temporalAddress: temporal.address,
          port: uiPort,
          namespace,
          checkPort: standard,
          onLine: (line) => options.onLine?.('temporal-ui', line),
          detached: options.detached,
        });
        stops.push(() => ui!.stop());
      } catch (err) {
        uiProblem = `the Temporal Web UI server did not start: ${(err as Error).message.split('\n')[0]}`;
        progress(uiProblem);
      }
    }
    const uiUrl = ui ? (standard ? cfg.temporal.uiUrl : ui.url) : cfg.temporal.uiUrl;

    const sandboxDataDir = path.join(dataDir, 'sandbox');
    mkdirSync(sandboxDataDir, { recursive: true });
    const plan = planServices(
      defaultPlanInput({
        temporalAddress: temporal.address,
        namespace,
        taskQueue: options.taskQueue ?? cfg.temporal.taskQueue,
        uiUrl,
        sandboxPort,
        sandboxDataDir,
        apiPorts,
        workers: options.workers ?? 2,
        ledgerUrl,
        // The same secret in every API process: a storefront session survives a switch of process.
        storeSessionSecret: cfg.api.storeSessionSecret || randomBytes(32).toString('base64url'),
      }),
    );
    const services = plan.map(
      (p) =>
        new ClusterService(p, cfg.root, {
          onLine: options.onLine,
          onUnexpectedExit: options.onUnexpectedExit,
          detached: options.detached,
          extraEnv: options.extraEnv?.[p.composeService],
        }),
    );
    const [sandbox, ...rest] = services;
    stops.push(() => sandbox.stop());
    await sandbox.start();
    progress(`FPS sandbox ${sandbox.plan.healthUrl!.replace(/\/healthz$/, '')}`);
    // Workers and APIs depend only on Temporal and the sandbox: start them side by side.
    stops.push(async () => Promise.all(rest.map((s) => s.stop())));
    await Promise.all(rest.map((s) => s.start()));
    const workers = services.filter((s) => s.plan.composeService === 'worker');
    const apis = services.filter((s) => s.plan.composeService === 'api');
    progress(`${workers.length} workers and ${apis.length} API processes ready`);

    return {
      postgres,
      temporal,
      ui,
      uiProblem,
      sandbox,
      workers,
      apis,
      services,
      plan,
      apiUrls: apis.map((a) => `http://127.0.0.1:${a.plan.port}`),
      sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
      uiUrl,
      ledgerUrl,
      apiKey: apis[0]?.plan.env.API_KEYS ?? DEV_API_KEY,
      namespace,
      taskQueue: plan[0].env.TEMPORAL_TASK_QUEUE,
      address: temporal.address,
      dataDir,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
