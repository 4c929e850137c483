// `npm run api`: connect to Temporal (TEMPORAL_ADDRESS, else the local dev server), serve the
// merchant API and storefront, and shut down cleanly on SIGTERM/SIGINT (finish in-flight requests,
// then close the Temporal connection).
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { config, describeConfig } from '../config';
import { createLogger } from '../config/logger';
import { openLedger } from '../store';
import { createApp } from './app';
import { answerMalformedHttp } from './problem';
import { temporalRetryInterceptors } from './temporal-retry';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger('api');
  const address = cfg.temporal.address || `127.0.0.1:${cfg.temporal.devPort}`;
  const connection = await Connection.connect({
    address,
    tls: cfg.temporal.tls || undefined,
    apiKey: cfg.temporal.apiKey || undefined,
    interceptors: temporalRetryInterceptors(),
  });
  const client = new Client({ connection, namespace: cfg.temporal.namespace });
  const ledger = await openLedger();
  const app = createApp({ client, config: cfg, logger, ledger });

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(cfg.api.port, cfg.api.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  answerMalformedHttp(server);
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
        await connection.close().catch(() => undefined);
        await ledger.close().catch(() => undefined);
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
