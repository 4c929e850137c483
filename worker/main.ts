// The worker process (`npm run worker`): polls the instruments' task queue until SIGTERM/SIGINT,
// then lets running tasks finish and exits. Logs are pino JSON lines, the SDK's included.
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { config } from '../config';
import { createLogger } from '../config/logger';
import { createActivities } from '../activities';
import { openLedger } from '../store';
import { connectWorker, createInstrumentWorker } from './create-worker';
import { observeFpsCalls } from '../fps/client';
import { serveMetrics } from '../observability/metrics';
import { createWorkerMetrics } from '../observability/worker-metrics';
import { bothObservers, fpsCallSpans, startTracing, workflowSpanProcessor } from '../observability/tracing';
import { freePort } from '../observability/free-port';

const logger = createLogger('worker');

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

async function main(): Promise<void> {
  // Before anything touches the Runtime: route the SDK's (and workflows') logs through pino, and
  // handle the shutdown signals ourselves.
  const { observability } = config();
  // The core's own Prometheus exporter listens on a private loopback port; our /metrics appends it.
  const coreMetricsPort = observability.metrics ? await freePort() : undefined;
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => logger[PINO_LEVEL[entry.level]]({ ...entry.meta }, entry.message)),
    shutdownSignals: [],
    ...(coreMetricsPort
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${coreMetricsPort}` } } } }
      : {}),
  });
  const { temporal } = config();
  const metrics = observability.metrics ? createWorkerMetrics() : undefined;
  const tracing = observability.otlpEndpoint ? startTracing('fps-worker', observability.otlpEndpoint) : undefined;
  observeFpsCalls(bothObservers(metrics?.fpsObserver, tracing && fpsCallSpans(tracing.tracer, config().fps.endpoint)));
  const metricsServer = metrics
    ? await serveMetrics(metrics.registry, {
        host: observability.workerMetricsHost,
        port: observability.workerMetricsPort,
        logger,
        extra: async () => (await fetch(`http://127.0.0.1:${coreMetricsPort}/metrics`)).text(),
      })
    : undefined;
  if (metricsServer) logger.info({ url: metricsServer.url }, 'worker metrics listening');
  const connection = await connectWorker();
  const ledger = await openLedger(undefined, {
    onConnectionLost: (err) => logger.warn({ err }, 'ledger store: a pooled connection was lost; it is replaced'),
  });
  logger.info({ ledger: ledger.ledger.describe }, 'ledger store open');
  const worker = await createInstrumentWorker({
    connection,
    activities: createActivities(ledger),
    activityInterceptors: metrics ? [metrics.activityInterceptor] : [],
    tracing: tracing && { processor: workflowSpanProcessor(tracing.processor), resource: tracing.resource },
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'worker shutting down');
    worker.shutdown();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const running = worker.run();
  logger.info(
    {
      taskQueue: temporal.taskQueue,
      namespace: temporal.namespace,
      address: temporal.address || `127.0.0.1:${temporal.devPort}`,
      fpsEndpoint: config().fps.endpoint,
    },
    'worker started',
  );
  try {
    await running;
  } finally {
    await connection.close();
    await ledger.close();
    await metricsServer?.close();
    await tracing?.shutdown().catch(() => undefined);
  }
  logger.info('worker stopped');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    logger.fatal({ err }, 'worker failed');
    process.exit(1);
  },
);
