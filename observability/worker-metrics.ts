// The worker's own metrics (GET /metrics on WORKER_METRICS_PORT): every FPS call by action, HTTP
// status and error code with its latency (an FpsClient observer), every activity by type and
// outcome, with the FPS TransactionStatus money activities answered (settlements, write-offs and
// poll resolutions among them), and the Pending operations a status poll resolved. The Temporal core's runtime metrics (workflow task and activity
// latencies, sticky cache, pollers, continue-as-new) are appended to the same answer.
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { FpsCallObserver } from '../fps/client';
import { FpsError } from '../fps/errors';
import { createRegistry, LATENCY_BUCKETS, secondsSince } from './metrics';

export interface WorkerMetrics {
  registry: Registry;
  fpsObserver: FpsCallObserver;
  activityInterceptor: ActivityInterceptorsFactory;
}

export function createWorkerMetrics(registry: Registry = createRegistry('worker')): WorkerMetrics {
  const fpsCalls = new Counter({
    name: 'fps_calls_total',
    help: 'FPS Query API calls by action, HTTP status (0: no answer) and FPS error code ("" on success)',
    labelNames: ['action', 'http_status', 'error_code'] as const,
    registers: [registry],
  });
  const fpsDuration = new Histogram({
    name: 'fps_call_duration_seconds',
    help: 'FPS Query API call latency, connection to last body byte, by action and outcome (ok/error)',
    labelNames: ['action', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const activities = new Counter({
    name: 'worker_activities_total',
    help: 'Activity executions by type, local or not, and outcome: the FPS TransactionStatus a money activity answered (Success, Pending, Failure, …), "ok" for others, or the failure type',
    labelNames: ['activity', 'local', 'outcome'] as const,
    registers: [registry],
  });
  const activityDuration = new Histogram({
    name: 'worker_activity_duration_seconds',
    help: 'Activity execution time (one attempt) by type',
    labelNames: ['activity', 'local'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const resolutions = new Counter({
    name: 'pending_resolutions_total',
    help: 'Pending operations resolved, by source (poll here: a GetTransactionStatus poll that answered a final status; ipn in the API) and the final TransactionStatus',
    labelNames: ['source', 'status'] as const,
    registers: [registry],
  });

  const fpsObserver: FpsCallObserver = {
    start(action) {
      const started = process.hrtime.bigint();
      return ({ httpStatus, errorCode }) => {
        fpsCalls.inc({ action, http_status: String(httpStatus ?? 0), error_code: errorCode ?? '' });
        fpsDuration.observe({ action, outcome: errorCode ? 'error' : 'ok' }, secondsSince(started));
      };
    },
  };

  const activityInterceptor: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const labels = { activity: ctx.info.activityType, local: String(ctx.info.isLocal) };
        const started = process.hrtime.bigint();
        try {
          const result = await next(input);
          const outcome = outcomeOf(result);
          activities.inc({ ...labels, outcome });
          if (ctx.info.activityType === 'getTransactionStatus' && outcome !== 'Pending' && outcome !== 'ok')
            resolutions.inc({ source: 'poll', status: outcome });
          return result;
        } catch (err) {
          activities.inc({ ...labels, outcome: failureType(err) });
          throw err;
        } finally {
          activityDuration.observe(labels, secondsSince(started));
        }
      },
    },
  });

  return { registry, fpsObserver, activityInterceptor };
}

function outcomeOf(result: unknown): string {
  const status = (result as { transactionStatus?: unknown } | null | undefined)?.transactionStatus;
  return typeof status === 'string' ? status : 'ok';
}

function failureType(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.type ?? 'ApplicationFailure';
  if (err instanceof FpsError) return err.code;
  return err instanceof Error ? err.name : 'Error';
}
