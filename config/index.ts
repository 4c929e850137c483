// All configuration, read from the environment once, with defaults that run on one machine.
// Every variable is documented in README.md ("Configuration"). Secrets are read here and nowhere
// else, and are never logged: use `describeConfig()` for a printable view.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '..');

function str(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** `true`/`1`/`on`/`yes` or `false`/`0`/`off`/`no`; anything else is a start-up error. */
function bool(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (/^(true|1|on|yes)$/i.test(raw)) return true;
  if (/^(false|0|off|no)$/i.test(raw)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function list(name: string, fallback: string[]): string[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets). */
function secret(name: string, fallback: string): string {
  const file = process.env[`${name}_FILE`];
  if (file) return readFileSync(file, 'utf8').trim();
  return str(name, fallback);
}

/** Development credentials shared by the sandbox and the client; override both in any real deployment. */
export const DEV_ACCESS_KEY_ID = 'AKIADEVSANDBOX000001';
export const DEV_SECRET_KEY = 'dev-sandbox-secret-key-change-me-0000000001';
export const DEV_API_KEY = 'dev-merchant-api-key';

export function loadConfig() {
  const sandboxPort = int('SANDBOX_PORT', 8701);
  const sandboxUrl = str('SANDBOX_PUBLIC_URL', `http://127.0.0.1:${sandboxPort}`).replace(/\/$/, '');
  const apiPort = int('API_PORT', 3000);
  const apiUrl = str('API_PUBLIC_URL', `http://127.0.0.1:${apiPort}`).replace(/\/$/, '');
  const uiPort = int('TEMPORAL_UI_PORT', 8233);
  return {
    root,
    logLevel: str('LOG_LEVEL', 'info'),
    temporal: {
      /** When set, everything connects here and no dev server is started. */
      address: str('TEMPORAL_ADDRESS', ''),
      namespace: str('TEMPORAL_NAMESPACE', 'default'),
      taskQueue: str('TEMPORAL_TASK_QUEUE', 'fps-instruments'),
      apiKey: secret('TEMPORAL_API_KEY', ''),
      tls: str('TEMPORAL_TLS', '') === 'true',
      cliPath: str('TEMPORAL_CLI_PATH', ''),
      devPort: int('TEMPORAL_PORT', 7233),
      uiPort,
      uiUrl: str('TEMPORAL_UI_URL', `http://localhost:${uiPort}`).replace(/\/$/, ''),
      dbFile: str('TEMPORAL_DB_FILE', path.join(root, '.data', 'temporal.sqlite')),
      /** Where a Temporal CLI built by scripts/temporal-cli.ts is kept, shared by all checkouts. */
      cliCacheDir: str(
        'TEMPORAL_CLI_CACHE_DIR',
        path.join(str('XDG_CACHE_HOME', path.join(os.homedir(), '.cache')), 'fps-temporal'),
      ),
      /** The Temporal server and its SQL schema tool (`npm run start:cluster`); built into cliCacheDir when empty. */
      serverPath: str('TEMPORAL_SERVER_PATH', ''),
      sqlToolPath: str('TEMPORAL_SQL_TOOL_PATH', ''),
      /** The Temporal Web UI server for that cluster; built into cliCacheDir when empty. */
      uiServerPath: str('TEMPORAL_UI_SERVER_PATH', ''),
      /** The instrument worker (worker/main.ts). */
      worker: {
        /** Workflows kept in memory between tasks (sticky cache): each open instrument is one. */
        maxCachedWorkflows: int('TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS', 1_000),
        maxConcurrentWorkflowTaskExecutions: int('TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', 40),
        maxConcurrentActivityTaskExecutions: int('TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES', 100),
        /** Purchases run their FPS call as a local activity: this bounds concurrent purchase calls. */
        maxConcurrentLocalActivityExecutions: int('TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES', 100),
        /** On SIGTERM, running activities get this long to finish before they are cancelled. */
        shutdownGraceTimeMs: int('TEMPORAL_WORKER_SHUTDOWN_GRACE_MS', 10_000),
      },
    },
    fps: {
      endpoint: str('FPS_ENDPOINT', `${sandboxUrl}/`),
      cbuiEndpoint: str('FPS_CBUI_ENDPOINT', `${sandboxUrl}/cobranded-ui/actions/start`),
      accessKeyId: str('FPS_ACCESS_KEY_ID', DEV_ACCESS_KEY_ID),
      secretKey: secret('FPS_SECRET_KEY', DEV_SECRET_KEY),
      timeoutMs: int('FPS_TIMEOUT_MS', 10_000),
      /** URL prefixes a callback's certificateUrl may point at; anything else is rejected. */
      certificateUrlAllowlist: list('FPS_CERTIFICATE_URL_ALLOWLIST', [`${sandboxUrl}/certs/`]),
    },
    sandbox: {
      port: sandboxPort,
      host: str('SANDBOX_HOST', '127.0.0.1'),
      publicUrl: sandboxUrl,
      dataDir: str('SANDBOX_DATA_DIR', path.join(root, '.data', 'sandbox')),
      /** "id:secret,id:secret" — the access keys the sandbox accepts. */
      accessKeys: list('SANDBOX_ACCESS_KEYS', [`${DEV_ACCESS_KEY_ID}:${DEV_SECRET_KEY}`]).map((pair) => {
        const at = pair.indexOf(':');
        if (at <= 0) throw new Error('SANDBOX_ACCESS_KEYS entries must be id:secret');
        return { id: pair.slice(0, at), secret: pair.slice(at + 1) };
      }),
      /** Where IPNs are POSTed; set but empty (SANDBOX_IPN_URL=) disables IPNs. */
      ipnUrl: process.env.SANDBOX_IPN_URL ?? `${apiUrl}/fps/ipn`,
      pendingDelayMs: int('SANDBOX_PENDING_DELAY_MS', 2_000),
      /** IPN retry backoff: first retry after base ms, doubling up to max ms, until the receiver answers 2xx. */
      ipnRetryBaseMs: int('SANDBOX_IPN_RETRY_BASE_MS', 200),
      ipnRetryMaxMs: int('SANDBOX_IPN_RETRY_MAX_MS', 10_000),
      /** Give up on an IPN after this many attempts; 0 retries forever (FPS's at-least-once). */
      ipnMaxAttempts: int('SANDBOX_IPN_MAX_ATTEMPTS', 0),
      /** Per-attempt timeout of an IPN POST. */
      ipnTimeoutMs: int('SANDBOX_IPN_TIMEOUT_MS', 5_000),
      /** Faults queued at start, as the JSON array POST /admin/faults takes (see sandbox/README.md). */
      faults: str('SANDBOX_FAULTS', ''),
    },
    ledger: {
      /** The record: sqlite:<file> (default, under .data/) or postgres://user:pass@host:port/db. */
      url: secret('LEDGER_DATABASE_URL', `sqlite:${path.join(root, '.data', 'ledger.sqlite')}`),
      /** Delete records older than this many days at start; 0 keeps them forever. */
      retentionDays: int('LEDGER_RETENTION_DAYS', 0),
      /** SQLite: prepared statements kept per SQL text (0: prepare every query again). */
      sqliteStatementCache: int('LEDGER_SQLITE_STATEMENT_CACHE', 256),
    },
    /** Merchant webhooks (webhooks/deliverer.ts runs in the API process). */
    webhooks: {
      /** Run the deliverer in this API process; off on API replicas that should only serve requests. */
      deliver: bool('WEBHOOK_DELIVERY', true),
      /** First retry after about this long (jittered), doubling per attempt… */
      retryInitialMs: int('WEBHOOK_RETRY_INITIAL_MS', 1_000),
      /** …up to this (1 h)… */
      retryMaxMs: int('WEBHOOK_RETRY_MAX_MS', 3_600_000),
      /** …for this long after the event (3 days); then the delivery fails, and an endpoint with no success in the window is disabled. */
      retryWindowMs: int('WEBHOOK_RETRY_WINDOW_MS', 259_200_000),
      /** Per-attempt timeout: no answer (headers) within it counts as a failed attempt. */
      timeoutMs: int('WEBHOOK_TIMEOUT_MS', 10_000),
      /** How often the deliverer looks for due deliveries when it has nothing to do. */
      pollMs: int('WEBHOOK_POLL_MS', 200),
      /** Deliveries claimed (and sent concurrently) per round. */
      concurrency: int('WEBHOOK_CONCURRENCY', 16),
      /**
       * Endpoints on loopback, private, link-local and other non-public addresses. On by default
       * (development: receivers run on this machine); docker-compose.yml turns it off.
       */
      allowPrivateUrls: bool('WEBHOOK_ALLOW_PRIVATE_URLS', true),
    },
    /** Metrics and traces (observability/, README "Operating it"). */
    observability: {
      /** Prometheus metrics: the API's and the sandbox's GET /metrics, the worker's metrics server. */
      metrics: bool('METRICS_ENABLED', true),
      /** The worker's GET /metrics (ours and the Temporal core's); 0 = a free port (logged). */
      workerMetricsPort: int('WORKER_METRICS_PORT', 9464),
      workerMetricsHost: str('WORKER_METRICS_HOST', '127.0.0.1'),
      /** The API's business gauges (record and visibility) are recomputed at most this often. */
      storeGaugesRefreshMs: int('METRICS_STORE_REFRESH_MS', 15_000),
      /** OTLP/HTTP collector base URL (spans go to <url>/v1/traces); empty = tracing off. */
      otlpEndpoint: str('OTEL_EXPORTER_OTLP_ENDPOINT', '').replace(/\/$/, ''),
    },
    cluster: {
      /** `npm run start:cluster` keeps PostgreSQL's data, the sandbox ledger and the server config here. */
      dataDir: str('CLUSTER_DATA_DIR', path.join(root, '.data', 'cluster')),
    },
    api: {
      port: apiPort,
      host: str('API_HOST', '127.0.0.1'),
      publicUrl: apiUrl,
      apiKeys: list('API_KEYS', [DEV_API_KEY]),
      /** Origins (besides publicUrl's) an instrument's returnTo URL may point at. */
      returnToOrigins: list('API_RETURN_TO_ORIGINS', []),
      /** Longest a request waits for an Update or query before answering 504 (retry with the same key). */
      operationTimeoutMs: int('API_OPERATION_TIMEOUT_MS', 30_000),
      /** Signs the demo storefront's session cookie; empty = a random key per process (sessions end on restart). */
      storeSessionSecret: secret('STORE_SESSION_SECRET', ''),
      /**
       * Token bucket per API key (api/rate-limit.ts): this many requests per second on average,
       * bursts up to rateLimitBurst; 0 turns it off. Generous by default, so benchmarks are not throttled.
       */
      rateLimitPerSecond: int('API_RATE_LIMIT_PER_SECOND', 1_000),
      rateLimitBurst: int('API_RATE_LIMIT_BURST', 2_000),
    },
  };
}

export type Config = ReturnType<typeof loadConfig>;

let cached: Config | undefined;
/** The process's configuration, read once. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}

/** Configuration with secrets masked, for start-up logs. */
export function describeConfig(c: Config = config()): unknown {
  return JSON.parse(
    JSON.stringify(c, (key, value) =>
      /secret|apiKey|apiKeys|accessKeys/i.test(key) && value !== '' ? '[redacted]' : value,
    ),
  );
}
