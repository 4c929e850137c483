// Shared Prometheus plumbing (prom-client): one registry per process with the process's default
// metrics, the /metrics answer, and a tiny HTTP server for processes that serve no HTTP (the worker).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from '../config/logger';

/** Latency buckets in seconds: 1 ms … 30 s (FPS calls, Updates, HTTP requests). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A registry with Node's process metrics (CPU, memory, event loop lag, GC), labelled with the service. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Seconds since `startedNs` (a process.hrtime.bigint() reading). */
export const secondsSince = (startedNs: bigint): number => Number(process.hrtime.bigint() - startedNs) / 1e9;

/** GET /metrics for an Express app. `extra` adds text from elsewhere (another exposition). */
export function metricsHandler(registry: Registry, extra?: () => Promise<string>): RequestHandler {
  return async (_req, res) => {
    const [own, more] = await Promise.all([registry.metrics(), extra?.().catch(() => '') ?? '']);
    res
      .status(200)
      .type(registry.contentType)
      .set('cache-control', 'no-store')
      .send(more ? `${own}\n${more}` : own);
  };
}

export interface MetricsServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics on host:port (port 0: a free one). A port that is taken is logged and
 * answered with undefined: metrics must never stop the process that carries payments.
 */
export async function serveMetrics(
  registry: Registry,
  options: { host: string; port: number; logger: Logger; extra?: () => Promise<string> },
): Promise<MetricsServer | undefined> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    void Promise.all([registry.metrics(), options.extra?.().catch(() => '') ?? '']).then(
      ([own, more]) =>
        res
          .writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
          .end(more ? `${own}\n${more}` : own),
      (err: unknown) => {
        options.logger.warn({ err }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
  } catch (err) {
    options.logger.warn(
      { err, port: options.port },
      'metrics server not started (port unavailable); running without it',
    );
    return undefined;
  }
  server.unref();
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${options.host}:${port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
