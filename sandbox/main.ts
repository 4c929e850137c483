// `npm run sandbox`: the FPS sandbox as its own process, configured from the environment
// (config/index.ts), stopped gracefully on SIGTERM/SIGINT.
import { config } from '../config';
import { createLogger } from '../config/logger';
import { createSandbox, sandboxOptionsFromConfig } from './app';

async function main(): Promise<void> {
  const logger = createLogger('sandbox');
  const c = config().sandbox;
  const sandbox = await createSandbox({ ...sandboxOptionsFromConfig(c), logger });
  logger.info(
    {
      url: sandbox.url,
      publicUrl: c.publicUrl,
      dataDir: c.dataDir,
      ipnUrl: c.ipnUrl || null,
      pendingDelayMs: c.pendingDelayMs,
      accessKeyIds: c.accessKeys.map((k) => k.id),
    },
    'sandbox listening',
  );

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'sandbox stopping');
    try {
      await sandbox.close();
      logger.info('sandbox stopped');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'sandbox did not stop cleanly');
      process.exit(1);
    }
  };
  process.on('SIGTERM', (signal) => void stop(signal));
  process.on('SIGINT', (signal) => void stop(signal));
}

main().catch((err: unknown) => {
  createLogger('sandbox').fatal({ err }, 'sandbox failed to start');
  process.exit(1);
});
