// The webhook deliverer: a loop in the API process that claims due deliveries (with a lease),
// POSTs each signed event to its endpoint, records the attempt and schedules the next one with
// backoff, or fails it after the retry window and disables an endpoint that never answered in it.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Config } from '../config';
import type { Logger } from '../config/logger';
import type { AttemptResult, ClaimedDelivery, WebhookStore } from '../store/webhooks';
import { wireEvent } from './event-body';
import { nextStep, type RetrySettings } from './retry-policy';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, sign } from './signature';
import { checkWebhookUrl, WebhookUrlError, type UrlPolicy } from './url-policy';

export type DelivererSettings = Config['webhooks'];

export interface DelivererOptions {
  now?: () => number;
  random?: () => number;
  resolve?: UrlPolicy['resolve'];
  /** Told about each recorded attempt (metrics): delivered, to be retried, or failed for good. */
  onAttempt?: (result: 'delivered' | 'pending' | 'failed', durationMs: number, endpointId: string) => void;
}

/** The longest a receiver's error text is kept (it is the merchant's, not ours). */
const MAX_ERROR_LENGTH = 300;
/** After a database error the loop waits this long, doubling up to 30 s, then tries again. */
const ERROR_BACKOFF_MS = 500;
/** Tries at recording an attempt before leaving it to the lease. */
const RECORD_ATTEMPTS = 4;

export class WebhookDeliverer {
  /** Names this process's leases (host, pid, random), so a row is only moved by its claimer. */
  readonly token = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private nudged = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly retry: RetrySettings;

  constructor(
    private readonly store: WebhookStore,
    private readonly settings: DelivererSettings,
    private readonly logger: Logger,
    private readonly options: DelivererOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.retry = { initialMs: settings.retryInitialMs, maxMs: settings.retryMaxMs, windowMs: settings.retryWindowMs };
  }

  /** A claim outlives the slowest attempt by a margin, so it never expires under a live deliverer. */
  get leaseMs(): number {
    return this.settings.timeoutMs * 2 + 10_000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    this.logger.info({ token: this.token, pollMs: this.settings.pollMs }, 'webhook deliverer started');
  }

  /** Look now rather than at the next poll (this process just queued an event). */
  nudge(): void {
    this.nudged = true;
    this.wake?.();
  }

  /** Stops claiming, lets the attempts in flight finish (each bounded by WEBHOOK_TIMEOUT_MS). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake?.();
    await this.loop;
    this.logger.info('webhook deliverer stopped');
  }

  private async run(): Promise<void> {
    let errorBackoff = 0;
    while (this.running) {
      let delivered = 0;
      try {
        this.nudged = false;
        if (await this.store.anyDue()) delivered = await this.deliverDue();
        errorBackoff = 0;
      } catch (err) {
        errorBackoff = Math.min(errorBackoff ? errorBackoff * 2 : ERROR_BACKOFF_MS, 30_000);
        this.logger.warn({ err, retryInMs: errorBackoff }, 'webhook deliverer: store unavailable');
      }
      if (delivered > 0 && !errorBackoff) continue;
      if (this.nudged && !errorBackoff) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, errorBackoff || this.settings.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** One round: claim what is due and send it all concurrently. Answers how many were claimed. */
  async deliverDue(): Promise<number> {
    const claimed = await this.store.claim(this.settings.concurrency, this.leaseMs, this.token);
    await Promise.all(claimed.map((c) => this.attempt(c)));
    return claimed.length;
  }

  private async attempt(claimed: ClaimedDelivery): Promise<void> {
    const { delivery, event, endpoint } = claimed;
    if (endpoint.deleted_at !== null || endpoint.disabled_at !== null) {
      await this.store.finishAttemptless(
        delivery.id,
        this.token,
        endpoint.deleted_at !== null ? 'endpoint deleted' : 'endpoint disabled',
      );
      return;
    }
    const body = JSON.stringify(wireEvent(event));
    const at = this.now();
    const started = process.hrtime.bigint();
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      const url = await checkWebhookUrl(endpoint.url, {
        allowPrivate: this.settings.allowPrivateUrls,
        resolve: this.options.resolve,
      });
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'fps-instruments-webhooks/1',
          [EVENT_ID_HEADER]: event.id,
          [SIGNATURE_HEADER]: sign(body, endpoint.secret, Math.floor(this.now() / 1000)),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      statusCode = response.status;
      // Only the status counts; the receiver's body is not read.
      await response.body?.cancel().catch(() => undefined);
      if (statusCode < 200 || statusCode > 299) error = `HTTP ${statusCode}`;
    } catch (err) {
      error = describeFailure(err, this.settings.timeoutMs);
    }
    const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
    const attempt = delivery.attempts + 1;
    const step =
      error === null
        ? ({ status: 'delivered' } as const)
        : nextStep(attempt, delivery.created_at, this.now(), this.retry, this.random);
    const recorded = await this.record(claimed, {
      at,
      statusCode,
      error,
      durationMs,
      status: step.status,
      nextAttemptAt: step.status === 'pending' ? step.at : undefined,
    });
    if (!recorded) return;
    this.options.onAttempt?.(step.status, durationMs, endpoint.id);
    const fields = {
      eventId: event.id,
      type: event.type,
      instrumentId: event.instrument_id,
      endpointId: endpoint.id,
      deliveryId: delivery.id,
      attempt,
      statusCode,
      ms: durationMs,
    };
    if (step.status === 'delivered')
      this.logger.info({ ...fields, latencyMs: this.now() - event.created_at }, 'webhook delivered');
    else if (step.status === 'pending')
      this.logger.info({ ...fields, error, retryInMs: step.at - this.now() }, 'webhook attempt failed; will retry');
    else {
      this.logger.warn({ ...fields, error }, 'webhook delivery failed: retry window over');
      await this.disableIfFailingThroughout(endpoint.id, delivery.created_at, error ?? 'unknown error');
    }
  }

  /**
   * Records the attempt, retried briefly if the store is busy or away. If it still fails, the
   * lease runs out and the delivery is sent again: at-least-once, never lost.
   */
  private async record(claimed: ClaimedDelivery, result: AttemptResult): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.recordAttempt(claimed, this.token, result);
        return true;
      } catch (err) {
        if (attempt >= RECORD_ATTEMPTS) {
          this.logger.error(
            { err, eventId: claimed.event.id, deliveryId: claimed.delivery.id },
            'webhook attempt not recorded; it will be sent again when its lease ends',
          );
          return false;
        }
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  /**
   * This delivery was retried for the whole window: if nothing else reached the endpoint since it
   * was created either, the endpoint has failed for the whole window and is disabled.
   */
  private async disableIfFailingThroughout(endpointId: string, since: number, lastError: string): Promise<void> {
    const endpoint = await this.store.endpoint(endpointId);
    if (!endpoint || endpoint.disabled_at !== null) return;
    if (endpoint.last_success_at !== null && endpoint.last_success_at >= since) return;
    const reason =
      `no delivery succeeded for ${formatDuration(this.settings.retryWindowMs)} ` +
      `(WEBHOOK_RETRY_WINDOW_MS) since ${new Date(since).toISOString()}; last error: ${lastError}`;
    await this.store.disableEndpoint(endpointId, reason);
    this.logger.warn({ endpointId, reason }, 'webhook endpoint disabled');
  }
}

function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof WebhookUrlError) return `URL refused: ${err.message}`;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`.slice(0, MAX_ERROR_LENGTH);
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
