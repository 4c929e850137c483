// Assembles the sandbox: ledger, signing identity, IPN sender, pending resolver, faults and the
// HTTP routes (Query API, CBUI, certificate, admin, health), and shuts it all down in order.
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type Express } from 'express';
import { config, type Config } from '../config';
import { createLogger, type Logger } from '../config/logger';
import { adminRouter } from './admin';
import { cbuiRouter } from './cbui';
import { CERT_FILE, ensureSigningIdentity } from './certs';
import { DueLoop } from './due-loop';
import { FaultQueue, parseFaultsEnv, type FaultSpec } from './faults';
import { html, page } from './html';
import { IpnSender } from './ipn-sender';
import { Ledger } from './ledger';
import { createSandboxMetrics } from './metrics';
import { queryApi } from './query-api';
import { metricsHandler } from '../observability/metrics';

export interface SandboxOptions {
  /** 0 picks a free port (see Sandbox.url). */
  port: number;
  host: string;
  /** How merchants reach the sandbox; certificateUrl is built from it. Default: the URL listened on. */
  publicUrl?: string;
  dataDir: string;
  accessKeys: ReadonlyArray<{ id: string; secret: string }>;
  /** '' disables IPNs (they can be switched on at runtime through POST /admin/ipn). */
  ipnUrl: string;
  pendingDelayMs: number;
  ipnRetryBaseMs: number;
  ipnRetryMaxMs: number;
  ipnMaxAttempts: number;
  ipnTimeoutMs: number;
  /** Faults queued at start. */
  faults?: readonly FaultSpec[];
  logger?: Logger;
  /** How long close() lets requests in flight finish before cutting connections. */
  shutdownGraceMs?: number;
  /** GET /metrics (Prometheus, sandbox/metrics.ts); default true (METRICS_ENABLED). */
  metrics?: boolean;
}

export interface Sandbox {
  app: Express;
  server: http.Server;
  /** http://host:port actually listened on. */
  url: string;
  ledger: Ledger;
  /** Stops accepting, finishes requests in flight, stops IPN/pending timers, closes the database. */
  close(): Promise<void>;
}

export const DB_FILE = 'sandbox.sqlite';

/** Options from config().sandbox (the environment), faults from SANDBOX_FAULTS included. */
export function sandboxOptionsFromConfig(c: Config['sandbox'] = config().sandbox): SandboxOptions {
  return {
    port: c.port,
    host: c.host,
    publicUrl: c.publicUrl,
    dataDir: c.dataDir,
    accessKeys: c.accessKeys,
    ipnUrl: c.ipnUrl,
    pendingDelayMs: c.pendingDelayMs,
    ipnRetryBaseMs: c.ipnRetryBaseMs,
    ipnRetryMaxMs: c.ipnRetryMaxMs,
    ipnMaxAttempts: c.ipnMaxAttempts,
    ipnTimeoutMs: c.ipnTimeoutMs,
    faults: parseFaultsEnv(c.faults),
    metrics: config().observability.metrics,
  };
}

export async function createSandbox(options: SandboxOptions): Promise<Sandbox> {
  const logger = options.logger ?? createLogger('sandbox');
  // Listen first: with port 0 the URL, and so the default public and certificate URLs, is only
  // known now. Until the app is ready the server answers 503.
  let handler: http.RequestListener = (_req, res) => res.writeHead(503).end();
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  try {
    const assembled = assemble(options, url, server, logger);
    handler = assembled.app;
    return assembled;
  } catch (e) {
    server.close();
    throw e;
  }
}

function assemble(options: SandboxOptions, url: string, server: http.Server, logger: Logger): Sandbox {
  mkdirSync(options.dataDir, { recursive: true });
  const publicUrl = (options.publicUrl ?? url).replace(/\/$/, '');
  const identity = ensureSigningIdentity(options.dataDir, new URL(publicUrl).hostname);
  const certificateUrl = `${publicUrl}/certs/${CERT_FILE}`;
  const certificateBytes = Buffer.from(identity.certificatePem, 'utf8');
  const keys = new Map(options.accessKeys.map((k) => [k.id, k.secret]));

  // The ledger reports status changes inside its transactions; the IPN sender records them there
  // (no event can happen before both exist: events come from requests).
  const ledger = new Ledger({
    file: path.join(options.dataDir, DB_FILE),
    pendingDelayMs: options.pendingDelayMs,
    onEvent: (event) => sender.enqueue(event),
  });
  const metrics = options.metrics === false ? undefined : createSandboxMetrics(ledger.db);
  const sender = new IpnSender({
    db: ledger.db,
    settings: { url: options.ipnUrl, enabled: options.ipnUrl !== '', duplicate: 0, delayMs: 0 },
    privateKeyPem: identity.privateKeyPem,
    certificateUrl,
    retryBaseMs: options.ipnRetryBaseMs,
    retryMaxMs: options.ipnRetryMaxMs,
    maxAttempts: options.ipnMaxAttempts,
    timeoutMs: options.ipnTimeoutMs,
    logger,
    onAttempt: metrics?.ipnAttempt,
  });
  const pending = new DueLoop(
    () => ledger.nextPendingAt(),
    () => {
      if (ledger.resolveDuePending() > 0) sender.wake();
    },
    (e) => logger.error({ err: e }, 'pending resolver failed'),
  );
  const faults = new FaultQueue();
  faults.add(options.faults ?? []);
  const afterChange = () => {
    sender.wake();
    pending.wake();
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  let closing = false;
  app.use((req, res, next) => {
    const started = performance.now();
    // While shutting down, keep-alive connections are closed after their current request.
    if (closing) res.set('connection', 'close');
    res.on('finish', () => {
      // A keep-alive connection whose request was in flight when close() began is idle now.
      if (closing) setImmediate(() => server.closeIdleConnections());
      if (res.locals.logged) return;
      // Path only: CBUI query strings carry signatures and are nobody's business in a log.
      logger.info(
        {
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        'http request',
      );
    });
    next();
  });

  if (metrics) app.get('/metrics', metricsHandler(metrics.registry));
  app.get('/healthz', (_req, res) => {
    res.json({ status: closing ? 'closing' : 'ok' });
  });
  app.get(`/certs/${CERT_FILE}`, (_req, res) => {
    // A Buffer, so Express adds no "; charset" to the PEM content type.
    res.type('application/x-pem-file').set('cache-control', 'public, max-age=3600').send(certificateBytes);
  });
  app.use(cbuiRouter({ ledger, keys, privateKeyPem: identity.privateKeyPem, certificateUrl, logger }));
  app.use(adminRouter({ ledger, faults, ipn: sender }));

  const api = queryApi({
    ledger,
    keys,
    faults,
    certificatePem: identity.certificatePem,
    afterChange,
    logger,
    onRequest: metrics?.fpsRequest,
  });
  app.get('/', (req, res, next) => {
    if (req.originalUrl.includes('?')) return api(req, res, next);
    res.type('html').send(
      page(
        'FPS sandbox',
        html`<h1>FPS sandbox</h1>
          <p>
            Query API (FPS 2008-09-17 / 2010-08-28) at <code>/</code>, Co-Branded UI at
            <code>/cobranded-ui/actions/start</code>, certificate at <code>/certs/${CERT_FILE}</code>.
          </p>
          <p><a href="/admin">Ledger view</a></p>`,
      ),
    );
  });
  app.post('/', express.text({ type: () => true, limit: '256kb' }), api);

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = (err as { status?: number }).status ?? 500;
    if (status >= 500) logger.error({ err }, 'unhandled error');
    res
      .status(status)
      .type('text/plain')
      .send(status >= 500 ? 'Internal error\n' : `${(err as Error).message}\n`);
  });

  sender.start(); // resumes deliveries an earlier run left pending
  pending.wake(); // resolves Pending transactions that fell due while stopped

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), options.shutdownGraceMs ?? 10_000);
      await serverClosed;
      clearTimeout(deadline);
      await pending.stop();
      await sender.stop();
      ledger.close();
    })();
    return closed;
  };

  return { app, server, url, ledger, close };
}
