// The worker process (`npm run worker`): polls the instruments' task queue until SIGTERM/SIGINT,
// then lets running tasks finish and exits. Logs are pino JSON lines, the SDK's included.
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { config } from '../config';
import { createLogger } from '../config/logger';
import { createActivities } from '../activities';
import { openLedger } from '../store';
import { connectWorker, createInstrumentWorker } from './create-worker';

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
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => logger[PINO_LEVEL[entry.level]]({ ...entry.meta }, entry.message)),
    shutdownSignals: [],
  });
  const { temporal } = config();
  const connection = await connectWorker();
  const ledger = await openLedger();
  logger.info({ ledger: ledger.ledger.describe }, 'ledger store open');
  const worker = await createInstrumentWorker({ connection, activities: createActivities(ledger) });

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
