// The merchant API as an Express app: createApp({ client }) wires configuration, the instrument
// service, the callback verifier, the route table, the storefront and the problem+json error model.
// Listening, connecting and shutting down are main.ts's job, so tests can run the app in-process.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import type { Client } from '@temporalio/client';
import type { Span, Tracer } from '@opentelemetry/api';
import { config as loadedConfig, type Config } from '../config';
import { createLogger, type Logger } from '../config/logger';
import { CallbackVerifier } from '../fps/callback-verifier';
import { requireApiKey } from './auth';
import type { LedgerStore } from '../store/ledger';
import type { ApiContext } from './context';
import { Instruments } from './instruments';
import { openApiDocument } from './openapi';
import { ProblemError, sendProblem } from './problem';
import { rateLimit } from './rate-limit';
import type { RouteSpec } from './route';
import { fpsCallbackRoutes } from './routes/fps-callbacks';
import { instrumentRoutes } from './routes/instruments';
import { ledgerRoutes } from './routes/ledger';
import { serviceRoutes } from './routes/service';
import { storeBackend } from './routes/store';
import { keepRawBody, type StoreFulfilment } from './routes/store-fulfilment';
import { webhookRoutes } from './routes/webhooks';
import { WebhookStore } from '../store/webhooks';
import type { ApiMetrics } from '../observability/api-metrics';
import { metricsHandler } from '../observability/metrics';
import { inServerSpan } from '../observability/tracing';
import type { TraceLinks } from '../observability/trace-links';

export const BODY_LIMIT = '16kb';

export interface AppDeps {
  client: Client;
  config?: Config;
  logger?: Logger;
  /** Default: a CallbackVerifier over config().fps.certificateUrlAllowlist. */
  verifier?: ApiContext['verifier'];
  /** The record; api/main.ts opens it from LEDGER_DATABASE_URL. */
  ledger?: LedgerStore;
  /** Called when this process queues an event itself (api/main.ts: the deliverer's nudge). */
  onEventQueued?: () => void;
  /** Prometheus metrics (GET /metrics); none when absent (METRICS_ENABLED=false). */
  metrics?: ApiMetrics;
  /** A server span per routed request when tracing is on (observability/tracing.ts); none when absent. */
  tracer?: Tracer;
  /** With the tracer: a 202 answer remembers its span, an IPN links to it (observability/trace-links.ts). */
  traceLinks?: TraceLinks;
}

export interface MerchantApi {
  app: Express;
  routes: readonly RouteSpec[];
  context: ApiContext;
  /** The storefront's webhook consumer: main.ts starts it once listening, stops it on shutdown. */
  storefront: StoreFulfilment;
}

export function createApi(deps: AppDeps): MerchantApi {
  const cfg = deps.config ?? loadedConfig();
  const logger = deps.logger ?? createLogger('api');
  const { metrics, tracer } = deps;
  const verifier = deps.verifier ?? new CallbackVerifier({ certificateUrlAllowlist: cfg.fps.certificateUrlAllowlist });
  const context: ApiContext = {
    cfg,
    logger,
    verifier: metrics ? countedVerifier(verifier, metrics) : verifier,
    ledger: deps.ledger,
    webhooks: deps.ledger ? new WebhookStore(deps.ledger.ledger) : undefined,
    onEventQueued: deps.onEventQueued,
    instruments: new Instruments(deps.client, cfg, logger, {
      operationTimeoutMs: cfg.api.operationTimeoutMs,
      onBusyRetry: metrics?.updateBusyRetry,
    }),
  };

  const store = storeBackend(context);
  let document: unknown;
  const routes: RouteSpec[] = [
    ...instrumentRoutes(context),
    ...ledgerRoutes(context),
    ...fpsCallbackRoutes(context),
    ...store.routes,
    ...webhookRoutes(context),
    ...serviceRoutes(context, () => (document ??= openApiDocument(routes, cfg))),
  ];

  const app = express();
  app.disable('x-powered-by');
  // Behind a proxy on a private network (docker compose, a load balancer), trust its X-Forwarded-*.
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  if (metrics) {
    app.use(metrics.requests);
    // Before the rate limit: Prometheus scrapes without an API key.
    app.get('/metrics', metricsHandler(metrics.registry));
  }
  app.use(requestLog(logger));
  app.use(securityHeaders);
  app.use(rateLimit({ perSecond: cfg.api.rateLimitPerSecond, burst: cfg.api.rateLimitBurst }));
  app.use(express.json({ limit: BODY_LIMIT, strict: true, verify: keepRawBody }));
  app.use(
    express.static(path.join(__dirname, 'storefront'), {
      index: 'index.html',
      fallthrough: true,
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    }),
  );

  const apiKey = requireApiKey(cfg.api.apiKeys);
  for (const spec of routes) {
    const chain: RequestHandler[] = [];
    if (metrics) chain.push(labelRoute(spec.path));
    if (spec.security === 'apiKey') chain.push(apiKey);
    chain.push(...(spec.before ?? []));
    if (spec.body && (spec.body.contentType ?? 'application/json') === 'application/json') chain.push(jsonOnly);
    let handler = spec.handler;
    if (metrics && spec.operationId === 'createPurchase') handler = countedPurchase(handler, metrics);
    if (metrics && deps.ledger && spec.operationId === 'fpsIpn')
      handler = countedResolution(handler, metrics, deps.ledger, logger);
    if (tracer) {
      const name = `${spec.method.toUpperCase()} ${spec.path}`;
      const traced = handler;
      const links = deps.traceLinks;
      handler = (req, res) =>
        inServerSpan(tracer, name, { 'http.request.method': req.method, 'http.route': spec.path }, async (span) => {
          const body = links ? captureJson(res) : undefined;
          await traced(req, res);
          span.setAttribute('http.response.status_code', res.statusCode);
          if (links && body) await linkPending(links, spec, req, res, span, body(), logger);
        });
    }
    chain.push(async (req, res) => {
      await handler(req, res);
    });
    app[spec.method](spec.path, ...chain);
  }

  app.use((req) => {
    throw new ProblemError(404, 'not_found', `no route for ${req.method} ${req.path}`);
  });
  app.use(errorHandler(logger));
  return { app, routes, context, storefront: store.fulfilment };
}

/** The Express app alone, for callers that only need to listen. */
export function createApp(deps: AppDeps): Express {
  return createApi(deps).app;
}

/** Remembers what the handler sends with res.json (the operation a 202 answered). */
function captureJson(res: Response): () => unknown {
  let sent: unknown;
  const json = res.json.bind(res);
  res.json = ((body: unknown) => {
    sent = body;
    return json(body);
  }) as Response['json'];
  return () => sent;
}

/**
 * A 202 (an operation left Pending at FPS) remembers its span under the operation's CallerReference;
 * the IPN that later resolves it links its own span to that one (a trace of its own: it arrives
 * later, from FPS). Never fails the request: the answer is already sent.
 */
async function linkPending(
  links: TraceLinks,
  spec: RouteSpec,
  req: Request,
  res: Response,
  span: Span,
  sent: unknown,
  logger: Logger,
): Promise<void> {
  try {
    const pendingRef = (sent as { callerReference?: unknown } | undefined)?.callerReference;
    if (res.statusCode === 202 && typeof pendingRef === 'string') {
      await links.remember(pendingRef, span.spanContext());
      return;
    }
    const ipnRef = (req.body as { callerReference?: unknown } | undefined)?.callerReference;
    if (spec.operationId === 'fpsIpn' && res.statusCode === 200 && typeof ipnRef === 'string' && ipnRef) {
      const pending = await links.find(ipnRef);
      if (!pending) return;
      span.addLink({ context: pending, attributes: { 'fps.caller_reference': ipnRef } });
      span.setAttribute('fps.pending_trace_id', pending.traceId);
    }
  } catch (err) {
    logger.warn({ err, route: spec.path }, 'trace link not recorded');
  }
}

/** Names the route template for the request metrics (a path's ids would make a label per instrument). */
const labelRoute =
  (template: string): RequestHandler =>
  (_req, res, next) => {
    res.locals.route = template;
    next();
  };

/** Counts purchases by how they were answered: 201 approved, 202 pending, 402 declined (with FPS's code). */
function countedPurchase(handler: RouteSpec['handler'], metrics: ApiMetrics): RouteSpec['handler'] {
  return async (req, res) => {
    try {
      await handler(req, res);
    } catch (err) {
      if (err instanceof ProblemError && err.code === 'payment_declined') {
        const code = err.extra.declineCode;
        metrics.purchase('declined', typeof code === 'string' ? code : undefined);
      }
      throw err;
    }
    if (res.statusCode === 201) metrics.purchase('approved');
    else if (res.statusCode === 202) metrics.purchase('pending');
  };
}

/** Counts the IPNs that resolve a Pending operation: its row was Pending before, the IPN's status is final. */
function countedResolution(
  handler: RouteSpec['handler'],
  metrics: ApiMetrics,
  ledger: LedgerStore,
  logger: Logger,
): RouteSpec['handler'] {
  return async (req, res) => {
    const body = req.body as { callerReference?: unknown } | undefined;
    const ref = typeof body?.callerReference === 'string' ? body.callerReference : '';
    const before = ref
      ? await ledger.operationByCallerReference(ref).catch((err: unknown) => {
          logger.warn({ err }, 'IPN resolution not counted: the record did not answer');
          return undefined;
        })
      : undefined;
    await handler(req, res);
    if (res.statusCode !== 200 || before?.status !== 'Pending') return;
    // The record's status after the IPN (FPS's IPN spells it SUCCESS/FAILURE; the record as the Query API).
    const after = await ledger.operationByCallerReference(ref).catch(() => undefined);
    if (after && after.status !== 'Pending') metrics.pendingResolution(after.status);
  };
}

/** The callback verifier, counting each verdict (GET: a CBUI return, POST: an IPN). */
function countedVerifier(verifier: ApiContext['verifier'], metrics: ApiMetrics): ApiContext['verifier'] {
  return {
    async verify(request) {
      const verification = await verifier.verify(request);
      metrics.callback(request.httpMethod === 'GET' ? 'return' : 'ipn', verification.ok);
      return verification;
    },
  };
}

/** A body that is not JSON on a JSON route is refused rather than silently ignored. */
const jsonOnly: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !req.is('application/json'))
    throw new ProblemError(415, 'unsupported_media_type', 'send the body as application/json');
  next();
};

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The return URL's query carries FPS tokens: do not leak it in Referer headers to other sites.
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
  next();
};

/** One JSON line per request: method, path (no query: it may hold tokens), status, ms, ids. Never headers. */
function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const requestId =
      typeof req.headers['x-request-id'] === 'string' && /^[\w.-]{1,64}$/.test(req.headers['x-request-id'])
        ? req.headers['x-request-id']
        : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    res.on('finish', () => {
      const { instrumentId, purchaseId, operationId, customerId } = res.locals;
      logger.info(
        {
          requestId,
          method: req.method,
          path: req.originalUrl.split('?')[0],
          status: res.statusCode,
          ms: Number((Number(process.hrtime.bigint() - started) / 1e6).toFixed(1)),
          instrumentId,
          purchaseId,
          operationId,
          customerId,
        },
        'request',
      );
    });
    next();
  };
}

const BODY_PARSER_ERRORS: Record<string, { status: number; code: ProblemError['code']; detail: string }> = {
  'entity.too.large': { status: 413, code: 'payload_too_large', detail: `the body is larger than ${BODY_LIMIT}` },
  'parameters.too.many': { status: 413, code: 'payload_too_large', detail: 'too many form parameters' },
  'entity.parse.failed': { status: 400, code: 'malformed_json', detail: 'the body is not valid JSON' },
  'encoding.unsupported': { status: 415, code: 'unsupported_media_type', detail: 'unsupported content encoding' },
  'charset.unsupported': { status: 415, code: 'unsupported_media_type', detail: 'unsupported charset' },
};

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    let problem: ProblemError;
    if (err instanceof ProblemError) {
      problem = err;
    } else if (typeof err?.status === 'number' && err.status >= 400 && err.status < 500) {
      // A client error from Express or body-parser (a bad %-escape in the path, a body that is not
      // the gzip it claims): their messages are safe, but ours are consistent.
      const known = typeof err.type === 'string' ? BODY_PARSER_ERRORS[err.type] : undefined;
      problem = known
        ? new ProblemError(known.status, known.code, known.detail)
        : new ProblemError(400, 'malformed_request', 'the request could not be read');
    } else {
      logger.error({ err, method: req.method, path: req.originalUrl.split('?')[0] }, 'unexpected error');
      problem = new ProblemError(500, 'internal_error', 'unexpected error; it has been logged');
    }
    res.locals.problemCode = problem.code;
    sendProblem(res, problem);
  };
}
