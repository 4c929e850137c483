// The API of `bench:record-cost`'s "no record" variant: api/main.ts without the ledger store (no
// record reads or writes, no webhook deliverer), metrics and tracing off as in every variant.
// Not a product entry point: api/main.ts always opens LEDGER_DATABASE_URL.
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { createApi } from '../../../api/app';
import { temporalRetryInterceptors } from '../../../api/temporal-retry';
import { config } from '../../../config';
import { createLogger } from '../../../config/logger';

async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger('api');
  const connection = await Connection.connect({
    address: cfg.temporal.address || `127.0.0.1:${cfg.temporal.devPort}`,
    interceptors: temporalRetryInterceptors(),
  });
  const client = new Client({ connection, namespace: cfg.temporal.namespace });
  const { app } = createApi({ client, config: cfg, logger });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(cfg.api.port, cfg.api.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = 65_000;
  logger.info({ url: `http://${cfg.api.host}:${cfg.api.port}` }, 'api listening (no record)');
  const stop = () => {
    server.closeAllConnections();
    server.close(() => void connection.close().finally(() => process.exit(0)));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  createLogger('api').fatal({ err }, 'api failed to start');
  process.exit(1);
});
