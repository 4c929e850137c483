// What every route module gets: configuration, the Temporal-facing instrument service, the
// callback verifier and a logger. Built once in createApp().
import type { Request } from 'express';
import type { Config } from '../config';
import type { Logger } from '../config/logger';
import type { CallbackVerifier } from '../fps/callback-verifier';
import type { LedgerStore } from '../store/ledger';
import type { WebhookStore } from '../store/webhooks';
import type { Instruments } from './instruments';
import { ProblemError } from './problem';
import { IdempotencyKeyHeader } from './schemas';

export interface ApiContext {
  cfg: Config;
  instruments: Instruments;
  verifier: Pick<CallbackVerifier, 'verify'>;
  logger: Logger;
  /** The record (ledger store); absent only in tests that run the API without one. */
  ledger?: LedgerStore;
  /** Webhook endpoints, deliveries and the event log, in the same database as the record. */
  webhooks?: WebhookStore;
  /** This process queued an event (a webhook test): the deliverer looks at once instead of at its next poll. */
  onEventQueued?: () => void;
}

/** The request's Idempotency-Key, validated (printable, ≤ 64 characters of [A-Za-z0-9_.-]). */
export function idempotencyKey(req: Request): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const parsed = IdempotencyKeyHeader.safeParse(raw);
  if (!parsed.success) {
    throw new ProblemError(
      422,
      'validation_failed',
      'Idempotency-Key must be 1-64 characters of letters, digits, "_", "." and "-"',
      {
        field: 'Idempotency-Key',
      },
    );
  }
  return parsed.data;
}

/** Flat string parameters (query or form); repeated or nested names are refused. */
export function flatParams(source: unknown): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries((source ?? {}) as Record<string, unknown>)) {
    if (typeof value !== 'string')
      throw new ProblemError(400, 'malformed_request', `parameter ${name} must appear once, as a plain value`, {
        field: name,
      });
    params[name] = value;
  }
  return params;
}
