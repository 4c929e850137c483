// The merchant API's metrics (GET /metrics): requests and latency by route template and status,
// purchases by outcome and decline code, Temporal RPC retries and the API's own busy-Update retries, overload answers (429/503/504),
// FPS callbacks verified or refused; the business gauges (business-gauges.ts) join the same registry.
import type { RequestHandler } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createRegistry, LATENCY_BUCKETS, secondsSince } from './metrics';

export type PurchaseOutcome = 'approved' | 'declined' | 'pending';

export interface ApiMetrics {
  registry: Registry;
  /** First middleware: times every request; the route label is res.locals.route (set by app.ts per route). */
  requests: RequestHandler;
  purchase(outcome: PurchaseOutcome, declineCode?: string): void;
  callback(kind: 'return' | 'ipn', verified: boolean): void;
  /** A Temporal RPC the client's retry interceptor is about to send again. */
  temporalRetry(grpcCode: number, reason: string): void;
  /** An Update api/instruments.ts operate() sends again itself (busy instrument, or dropped unprocessed). */
  updateBusyRetry(reason: 'resource_exhausted' | 'unprocessed'): void;
  /** A Pending operation the IPN route resolved (its row was Pending, the IPN's status is final). */
  pendingResolution(status: string): void;
  /** One recorded webhook attempt (webhooks/deliverer.ts onAttempt). */
  webhookAttempt(result: 'delivered' | 'pending' | 'failed', durationMs: number, endpointId: string): void;
}

/** Overload and timeout answers an operator watches apart from the rest. */
const REFUSALS = new Set([429, 503, 504]);

export function createApiMetrics(registry: Registry = createRegistry('api')): ApiMetrics {
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route template ("(unmatched)": no route, e.g. refused before routing) and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency, first byte in to response finished, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'http_refusals_total',
    help: 'Answers 429 (rate limit), 503 (busy instrument, Temporal unreachable) and 504 (operation timeout) by status and problem code',
    labelNames: ['status', 'code'] as const,
    registers: [registry],
  });
  const purchases = new Counter({
    name: 'purchases_total',
    help: 'Purchases answered, by outcome (approved, declined, pending) and FPS decline code ("" unless declined)',
    labelNames: ['outcome', 'decline_code'] as const,
    registers: [registry],
  });
  const callbacks = new Counter({
    name: 'fps_callbacks_total',
    help: 'FPS callbacks (CBUI returns, IPNs) by kind and signature check result (verified, refused)',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'temporal_client_retries_total',
    help: 'Temporal RPCs (Updates among them) sent again by the client retry interceptor, by gRPC code and reason',
    labelNames: ['grpc_code', 'reason'] as const,
    registers: [registry],
  });
  const busyRetries = new Counter({
    name: 'update_busy_retries_total',
    help: 'Updates the API sent again with the same id after Temporal refused them (resource_exhausted: too many in flight on the instrument) or dropped them before a workflow task saw them (unprocessed)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const resolutions = new Counter({
    name: 'pending_resolutions_total',
    help: 'Pending operations resolved, by source (ipn here; poll in the worker) and the final TransactionStatus',
    labelNames: ['source', 'status'] as const,
    registers: [registry],
  });

  const webhookAttempts = new Counter({
    name: 'webhook_attempts_total',
    help: 'Webhook delivery attempts by endpoint id and result: delivered, pending (failed, will retry), failed (retry window over)',
    labelNames: ['endpoint', 'result'] as const,
    registers: [registry],
  });
  const webhookDuration = new Histogram({
    name: 'webhook_attempt_duration_seconds',
    help: 'Webhook delivery attempt time (POST to the receiver’s answer)',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  return {
    registry,
    requests: (req, res, next) => {
      const started = process.hrtime.bigint();
      res.on('finish', () => {
        const labels = {
          method: req.method,
          route: typeof res.locals.route === 'string' ? res.locals.route : '(unmatched)',
          status: String(res.statusCode),
        };
        requests.inc(labels);
        duration.observe(labels, secondsSince(started));
        if (REFUSALS.has(res.statusCode)) {
          const code =
            typeof res.locals.problemCode === 'string'
              ? res.locals.problemCode
              : res.statusCode === 429
                ? 'rate_limited'
                : '';
          refusals.inc({ status: labels.status, code });
        }
      });
      next();
    },
    purchase: (outcome, declineCode) => purchases.inc({ outcome, decline_code: declineCode ?? '' }),
    callback: (kind, verified) => callbacks.inc({ kind, result: verified ? 'verified' : 'refused' }),
    temporalRetry: (grpcCode, reason) => retries.inc({ grpc_code: String(grpcCode), reason }),
    updateBusyRetry: (reason) => busyRetries.inc({ reason }),
    pendingResolution: (status) => resolutions.inc({ source: 'ipn', status }),
    webhookAttempt: (result, durationMs, endpoint) => {
      webhookAttempts.inc({ endpoint, result });
      webhookDuration.observe(durationMs / 1000);
    },
  };
}
