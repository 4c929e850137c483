// Instant Payment Notifications, at least once: each status change is signed and written to the
// delivery log in the same database transaction as the change itself, then POSTed to the IPN URL
// and retried with exponential backoff until the merchant answers 2xx. The log survives restarts.
import type Database from 'better-sqlite3';
import { signCallbackParams } from '../fps/callback-signature';
import { buildIpnParams, type Ipn } from '../fps/ipn';
import { toQueryString } from '../fps/signature';
import type { Logger } from '../config/logger';
import { DueLoop } from './due-loop';
import type { LedgerEvent } from './ledger';

export interface IpnSettings {
  /** Where notifications go; '' = nowhere. */
  url: string;
  enabled: boolean;
  /** Deliver each notification 1 + duplicate times (to exercise idempotent merchant handlers). */
  duplicate: number;
  /** Hold each new notification this long before the first attempt (late IPNs). */
  delayMs: number;
}

export interface IpnSenderOptions {
  db: Database.Database;
  settings: IpnSettings;
  privateKeyPem: string;
  certificateUrl: string;
  retryBaseMs: number;
  retryMaxMs: number;
  /** 0 = retry forever. */
  maxAttempts: number;
  timeoutMs: number;
  logger: Logger;
  /** Told about each recorded attempt (the sandbox's metrics). */
  onAttempt?: (notificationType: string, result: 'delivered' | 'retry' | 'failed', ms: number) => void;
}

export interface IpnDeliveryRow {
  id: number;
  notification_type: string;
  transaction_id: string | null;
  token_id: string | null;
  transaction_status: string | null;
  url: string;
  body: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: number;
  last_http_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
  updated_at: number;
}

export interface IpnAttemptRow {
  delivery_id: number;
  attempt: number;
  at: number;
  http_status: number | null;
  error: string | null;
  ms: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ipn_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  notification_type TEXT NOT NULL,
  transaction_id TEXT,
  token_id TEXT,
  transaction_status TEXT,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_http_status INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  delivered_at INTEGER,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ipn_due ON ipn_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS ipn_by_transaction ON ipn_deliveries (transaction_id);
CREATE TABLE IF NOT EXISTS ipn_attempts (
  delivery_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  http_status INTEGER,
  error TEXT,
  ms INTEGER NOT NULL,
  PRIMARY KEY (delivery_id, attempt)
);
`;

/** At most this many POSTs in flight at once. */
const CONCURRENCY = 16;

export class IpnSender {
  readonly #o: IpnSenderOptions;
  readonly #settings: IpnSettings;
  readonly #loop: DueLoop;
  readonly #inFlight = new Map<number, { promise: Promise<void>; abort: AbortController }>();
  readonly #stmt;

  constructor(options: IpnSenderOptions) {
    this.#o = options;
    this.#settings = { ...options.settings };
    options.db.exec(SCHEMA);
    const db = options.db;
    this.#stmt = {
      insert: db.prepare(
        `INSERT INTO ipn_deliveries (notification_type, transaction_id, token_id, transaction_status, url, body, status, next_attempt_at, created_at, updated_at)
         VALUES (@notification_type, @transaction_id, @token_id, @transaction_status, @url, @body, 'pending', @next_attempt_at, @now, @now)`,
      ),
      next: db.prepare<[], { at: number | null }>(
        "SELECT MIN(next_attempt_at) AS at FROM ipn_deliveries WHERE status = 'pending'",
      ),
      due: db.prepare<[number, number], IpnDeliveryRow>(
        "SELECT * FROM ipn_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
      ),
      lease: db.prepare('UPDATE ipn_deliveries SET next_attempt_at = ? WHERE id = ?'),
      finish: db.prepare(
        `UPDATE ipn_deliveries SET status = @status, attempts = @attempts, next_attempt_at = @next_attempt_at, last_http_status = @http_status,
           last_error = @error, delivered_at = @delivered_at, updated_at = @now WHERE id = @id`,
      ),
      attempt: db.prepare(
        'INSERT OR REPLACE INTO ipn_attempts (delivery_id, attempt, at, http_status, error, ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      list: db.prepare<[number], IpnDeliveryRow>('SELECT * FROM ipn_deliveries ORDER BY id DESC LIMIT ?'),
      listFor: db.prepare<[string, string, number], IpnDeliveryRow>(
        'SELECT * FROM ipn_deliveries WHERE transaction_id = ? OR token_id = ? ORDER BY id DESC LIMIT ?',
      ),
      attempts: db.prepare<[number], IpnAttemptRow>(
        'SELECT * FROM ipn_attempts WHERE delivery_id = ? ORDER BY attempt',
      ),
      counts: db.prepare<[], { status: string; n: number }>(
        'SELECT status, COUNT(*) AS n FROM ipn_deliveries GROUP BY status',
      ),
    };
    this.#loop = new DueLoop(
      () => this.#nextDueAt(),
      () => this.#sendDue(),
      (e) => options.logger.error({ err: e }, 'ipn loop failed'),
    );
  }

  settings(): IpnSettings {
    return { ...this.#settings };
  }

  configure(patch: Partial<IpnSettings>): IpnSettings {
    Object.assign(this.#settings, patch);
    this.#o.logger.info({ ipn: { ...this.#settings } }, 'ipn settings changed');
    return this.settings();
  }

  /** Resumes deliveries left pending by an earlier run. */
  start(): void {
    this.#loop.wake();
  }

  /** Stops the timer and aborts POSTs in flight; they stay pending and resume on the next start. */
  async stop(): Promise<void> {
    await this.#loop.stop();
    for (const { abort } of this.#inFlight.values()) abort.abort();
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.promise));
  }

  /**
   * Records the notification for a ledger event. Runs inside the ledger's database transaction, so
   * the change and its notification commit together; call wake() after the commit.
   */
  enqueue(event: LedgerEvent): void {
    const { url, enabled, duplicate, delayMs } = this.#settings;
    if (!enabled || !url) return;
    const ipn = toIpn(event);
    let signed: Record<string, string>;
    try {
      signed = signCallbackParams(buildIpnParams(ipn), {
        httpMethod: 'POST',
        urlEndPoint: url,
        privateKeyPem: this.#o.privateKeyPem,
        certificateUrl: this.#o.certificateUrl,
      });
    } catch (e) {
      // A bad IPN URL must not undo the money movement that triggered the notification.
      this.#o.logger.error({ err: e, url }, 'ipn not recorded: cannot sign for this URL');
      return;
    }
    const now = Date.now();
    for (let copy = 0; copy <= duplicate; copy++) {
      this.#stmt.insert.run({
        notification_type: ipn.notificationType,
        transaction_id: ipn.notificationType === 'TransactionStatus' ? ipn.transactionId : null,
        token_id: ipn.notificationType === 'TokenCancellation' ? ipn.tokenId : null,
        transaction_status: ipn.notificationType === 'TransactionStatus' ? signed.transactionStatus : null,
        url,
        body: toQueryString(signed),
        next_attempt_at: now + delayMs,
        now,
      });
    }
  }

  /** Call after a commit that may have enqueued notifications. */
  wake(): void {
    this.#loop.wake();
  }

  list(limit: number, subjectId?: string): Array<IpnDeliveryRow & { attemptLog: IpnAttemptRow[] }> {
    const rows = subjectId ? this.#stmt.listFor.all(subjectId, subjectId, limit) : this.#stmt.list.all(limit);
    return rows.map((row) => ({ ...row, attemptLog: this.#stmt.attempts.all(row.id) }));
  }

  counts(): Record<string, number> {
    return Object.fromEntries(this.#stmt.counts.all().map((r) => [r.status, r.n]));
  }

  #nextDueAt(): number | undefined {
    // While CONCURRENCY POSTs are out, the next pass waits for one of them to finish (it wakes us).
    if (this.#inFlight.size >= CONCURRENCY) return undefined;
    return this.#stmt.next.get()?.at ?? undefined;
  }

  #sendDue(): void {
    const free = CONCURRENCY - this.#inFlight.size;
    if (free <= 0) return;
    const now = Date.now();
    for (const row of this.#stmt.due.all(now, free)) {
      if (this.#inFlight.has(row.id)) continue;
      // A lease: should this process die mid-POST, the delivery becomes due again after it.
      this.#stmt.lease.run(now + this.#o.timeoutMs + 1_000, row.id);
      const abort = new AbortController();
      const promise = this.#deliver(row, abort.signal).finally(() => {
        this.#inFlight.delete(row.id);
        this.#loop.wake();
      });
      this.#inFlight.set(row.id, { promise, abort });
    }
  }

  async #deliver(row: IpnDeliveryRow, shutdown: AbortSignal): Promise<void> {
    const started = Date.now();
    let httpStatus: number | null = null;
    let error: string | null = null;
    try {
      const response = await fetch(row.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: row.body,
        redirect: 'manual',
        signal: AbortSignal.any([shutdown, AbortSignal.timeout(this.#o.timeoutMs)]),
      });
      httpStatus = response.status;
      await response.arrayBuffer().catch(() => undefined);
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    const now = Date.now();
    const { db } = this.#o;
    if (!db.open) return;
    if (shutdown.aborted && httpStatus === null) {
      // Interrupted by our own shutdown: not the merchant's fault, retry first thing next start.
      this.#stmt.lease.run(now, row.id);
      return;
    }
    const attempts = row.attempts + 1;
    const delivered = httpStatus !== null && httpStatus >= 200 && httpStatus < 300;
    const gaveUp = !delivered && this.#o.maxAttempts > 0 && attempts >= this.#o.maxAttempts;
    const backoff = Math.min(this.#o.retryMaxMs, this.#o.retryBaseMs * 2 ** Math.min(attempts - 1, 30));
    db.transaction(() => {
      this.#stmt.attempt.run(row.id, attempts, started, httpStatus, error, now - started);
      this.#stmt.finish.run({
        id: row.id,
        status: delivered ? 'delivered' : gaveUp ? 'failed' : 'pending',
        attempts,
        next_attempt_at: delivered || gaveUp ? row.next_attempt_at : now + backoff,
        http_status: httpStatus,
        error: error ?? (delivered ? null : `HTTP ${httpStatus}`),
        delivered_at: delivered ? now : null,
        now,
      });
    })();
    this.#o.onAttempt?.(row.notification_type, delivered ? 'delivered' : gaveUp ? 'failed' : 'retry', now - started);
    const log = {
      ipnDelivery: row.id,
      notificationType: row.notification_type,
      transactionId: row.transaction_id ?? undefined,
      tokenId: row.token_id ?? undefined,
      attempt: attempts,
      httpStatus: httpStatus ?? undefined,
      ms: now - started,
    };
    if (delivered) this.#o.logger.info(log, 'ipn delivered');
    else
      this.#o.logger.warn(
        { ...log, error: error ?? undefined, retryInMs: gaveUp ? undefined : backoff, gaveUp },
        'ipn not delivered',
      );
  }
}

/** The IPN FPS would send for a ledger event. */
function toIpn(event: LedgerEvent): Ipn {
  if (event.kind === 'TokenCancellation') {
    const { token } = event;
    return {
      notificationType: 'TokenCancellation',
      tokenId: token.id,
      callerReference: token.caller_reference,
      tokenType: token.type,
      statusCode: 'TokenCancelled',
      statusMessage: token.cancel_reason ?? 'The token was cancelled.',
    };
  }
  const tx = event.transaction;
  // A settled reserve announces what was captured; everything else its own amount.
  const amount = event.operation === 'SETTLE' ? tx.settled_amount : tx.amount;
  return {
    notificationType: 'TransactionStatus',
    transactionId: tx.id,
    transactionStatus: tx.status,
    statusCode: tx.status_code,
    statusMessage: tx.status_message,
    callerReference: tx.caller_reference,
    operation: event.operation,
    transactionAmount: { amount, currency: tx.currency },
    transactionDate: Math.floor(tx.updated_at / 1000),
    paymentMethod: 'CC',
    ...(tx.token_id ? { tokenId: tx.token_id } : {}),
  };
}
