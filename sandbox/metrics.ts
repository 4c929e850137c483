// The sandbox's own Prometheus metrics (GET /metrics): every Query API request by action, HTTP
// status, FPS error code and the TransactionStatus it answered, with its latency; every IPN attempt
// by notification type and result; the IPN delivery log and the Pending transactions, read from
// the sandbox's database on each scrape (two grouped queries).
import type Database from 'better-sqlite3';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry, LATENCY_BUCKETS } from '../observability/metrics';

export interface FpsRequestObservation {
  /** The FPS action; '(invalid)' when the request named none that exists. */
  action: string;
  /** The HTTP status answered, or 'dropped' (a drop fault: the caller never got an answer). */
  status: number | 'dropped';
  errorCode?: string;
  transactionStatus?: string;
  ms: number;
}

export type IpnAttemptResult = 'delivered' | 'retry' | 'failed';

export interface SandboxMetrics {
  registry: Registry;
  fpsRequest(observation: FpsRequestObservation): void;
  ipnAttempt(notificationType: string, result: IpnAttemptResult, ms: number): void;
}

export function createSandboxMetrics(db: Database.Database, registry: Registry = createRegistry('sandbox')) {
  const requests = new Counter({
    name: 'sandbox_fps_requests_total',
    help: 'FPS Query API requests the sandbox answered, by action, HTTP status ("dropped": a drop fault), FPS error code ("" on success) and TransactionStatus answered ("" when none)',
    labelNames: ['action', 'status', 'error_code', 'transaction_status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'sandbox_fps_request_duration_seconds',
    help: 'FPS Query API request time inside the sandbox (injected delays included), by action',
    labelNames: ['action'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const ipnAttempts = new Counter({
    name: 'sandbox_ipn_attempts_total',
    help: 'IPN POSTs to the merchant by notification type and result: delivered (2xx), retry (refused or no answer, will retry), failed (refused and SANDBOX_IPN_MAX_ATTEMPTS reached)',
    labelNames: ['notification_type', 'result'] as const,
    registers: [registry],
  });
  const ipnDuration = new Histogram({
    name: 'sandbox_ipn_attempt_duration_seconds',
    help: 'IPN POST time, request to the merchant’s answer (or the timeout)',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  // Prepared on the first scrape: the IPN sender creates its tables after this registry exists.
  let byStatus: Database.Statement<[], { status: string; n: number }> | undefined;
  let pending: Database.Statement<[], { n: number }> | undefined;
  new Gauge({
    name: 'sandbox_ipn_deliveries',
    help: 'IPN deliveries in the sandbox’s log by status: pending (not yet acknowledged: the backlog), delivered, failed',
    labelNames: ['status'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const status of ['pending', 'delivered', 'failed']) this.set({ status }, 0);
      byStatus ??= db.prepare('SELECT status, COUNT(*) AS n FROM ipn_deliveries GROUP BY status');
      for (const row of byStatus.all()) this.set({ status: row.status }, row.n);
    },
  });
  new Gauge({
    name: 'sandbox_pending_transactions',
    help: 'Transactions the sandbox holds Pending (magic .13/.14 amounts until SANDBOX_PENDING_DELAY_MS)',
    registers: [registry],
    collect() {
      pending ??= db.prepare("SELECT COUNT(*) AS n FROM transactions WHERE status = 'Pending'");
      this.set(pending.get()?.n ?? 0);
    },
  });

  return {
    registry,
    fpsRequest({ action, status, errorCode, transactionStatus, ms }) {
      requests.inc({
        action,
        status: String(status),
        error_code: errorCode ?? '',
        transaction_status: transactionStatus ?? '',
      });
      duration.observe({ action }, ms / 1000);
    },
    ipnAttempt(notificationType, result, ms) {
      ipnAttempts.inc({ notification_type: notificationType, result });
      ipnDuration.observe(ms / 1000);
    },
  } satisfies SandboxMetrics;
}
