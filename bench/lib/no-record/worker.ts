// The worker of `bench:record-cost`'s "no record" variant: worker/main.ts without the ledger store
// (createActivities() without one: nothing is written, lookups find nothing, acknowledgements do
// nothing), and without metrics or tracing (the benchmark turns those off in every variant).
// Not a product entry point: worker/main.ts always opens LEDGER_DATABASE_URL.
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../../../activities';
import { createLogger } from '../../../config/logger';
import { connectWorker, createInstrumentWorker } from '../../../worker/create-worker';

const logger = createLogger('worker');
const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

async function main(): Promise<void> {
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => logger[PINO_LEVEL[entry.level]]({ ...entry.meta }, entry.message)),
    shutdownSignals: [],
  });
  const connection = await connectWorker();
  const worker = await createInstrumentWorker({ connection, activities: createActivities() });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const running = worker.run();
  logger.info('worker started (no record)');
  try {
    await running;
  } finally {
    await connection.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    logger.fatal({ err }, 'worker failed');
    process.exit(1);
  },
);
