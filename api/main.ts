// `npm run api`: connect to Temporal (TEMPORAL_ADDRESS, else the local dev server), serve the
// merchant API and storefront, deliver webhooks, and shut down cleanly on SIGTERM/SIGINT (stop
// claiming deliveries, finish in-flight requests and attempts, then close Temporal and the record).
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { config, describeConfig } from '../config';
import { createLogger } from '../config/logger';
import { openLedger, WebhookStore } from '../store';
import { WebhookDeliverer } from '../webhooks/deliverer';
import { createApi } from './app';
import { answerMalformedHttp } from './problem';
import { temporalRetryInterceptors } from './temporal-retry';
import { createApiMetrics } from '../observability/api-metrics';
import { registerBusinessGauges } from '../observability/business-gauges';
import { startTracing } from '../observability/tracing';
import { openTraceLinks } from '../observability/trace-links';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger('api');
  const { observability } = cfg;
  const tracing = observability.otlpEndpoint ? startTracing('fps-api', observability.otlpEndpoint) : undefined;
  const metrics = observability.metrics ? createApiMetrics() : undefined;
  const address = cfg.temporal.address || `127.0.0.1:${cfg.temporal.devPort}`;
  const connection = await Connection.connect({
    address,
    tls: cfg.temporal.tls || undefined,
    apiKey: cfg.temporal.apiKey || undefined,
    interceptors: temporalRetryInterceptors(metrics?.temporalRetry),
  });
  const client = new Client({
    connection,
    namespace: cfg.temporal.namespace,
    // The Update's span carries the trace into the workflow (a header the worker's interceptors read).
    interceptors: tracing ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined,
  });
  const ledger = await openLedger(undefined, {
    onConnectionLost: (err) => logger.warn({ err }, 'ledger store: a pooled connection was lost; it is replaced'),
  });
  // The business gauges live here (the record's connection and a client are at hand; workers may be many).
  if (metrics)
    registerBusinessGauges(metrics.registry, {
      ledger,
      client,
      taskQueue: cfg.temporal.taskQueue,
      refreshMs: observability.storeGaugesRefreshMs,
      logger,
    });
  // Webhooks are delivered from here (WEBHOOK_DELIVERY): the API already holds the record's
  // connection, and delivery must not wait on the worker or Temporal (README, "Events and webhooks").
  const deliverer = cfg.webhooks.deliver
    ? new WebhookDeliverer(new WebhookStore(ledger.ledger), cfg.webhooks, logger.child({ component: 'webhooks' }), {
        onAttempt: metrics?.webhookAttempt,
      })
    : undefined;
  // A 202's span, found again by the IPN that resolves the operation (a table beside the record's).
  const traceLinks = tracing ? await openTraceLinks(ledger, logger) : undefined;
  const api = createApi({
    client,
    config: cfg,
    logger,
    ledger,
    onEventQueued: () => deliverer?.nudge(),
    metrics,
    tracer: tracing?.tracer,
    traceLinks,
  });
  const app = api.app;

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(cfg.api.port, cfg.api.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  answerMalformedHttp(server);
  deliverer?.start();
  void api.storefront.start();
  // Longer than a typical load balancer's idle timeout, so it closes first.
  server.keepAliveTimeout = 65_000;
  logger.info(
    {
      url: `http://${cfg.api.host}:${cfg.api.port}`,
      publicUrl: cfg.api.publicUrl,
      temporal: address,
      ledger: ledger.ledger.describe,
      config: describeConfig(cfg),
    },
    'api listening',
  );

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'api shutting down');
    // Claims stop now; attempts in flight finish and are recorded (each bounded by WEBHOOK_TIMEOUT_MS).
    const delivererStopped = deliverer?.stop().catch(() => undefined);
    api.storefront.stop();
    const force = setTimeout(() => {
      logger.warn('requests still open after the grace period; closing them');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    // Keep-alive connections whose request finishes after close() would otherwise stay open until
    // their idle timeout: close each one as soon as it has nothing in flight.
    const closeIdle = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(force);
      clearInterval(closeIdle);
      void (async () => {
        await delivererStopped;
        await connection.close().catch(() => undefined);
        await ledger.close().catch(() => undefined);
        await tracing?.shutdown().catch(() => undefined);
        logger.info('api stopped');
        process.exit(0);
      })();
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err) => {
  createLogger('api').fatal({ err }, 'api failed to start');
  process.exit(1);
});
