// The ledger store's tables as Kysely sees them. Money is integer minor units (BIGINT), times are
// UTC epoch milliseconds (BIGINT): the same on SQLite and PostgreSQL, so one query layer serves both.
import type { Generated, Selectable } from 'kysely';

export interface OperationsTable {
  /** The FPS CallerReference the operation sends (or the workflow's descriptive one for Settle/Cancel). */
  caller_reference: string;
  instrument_id: string;
  customer_id: string;
  instrument_type: string;
  /** purchase | refund | fund | settle | writeOff | reserve | capture | void */
  operation: string;
  operation_id: string;
  amount: number;
  currency: string;
  /** FPS TransactionStatus: Pending, Reserved, Success, Failure, Cancelled; Declined when FPS refused the call. */
  status: string;
  transaction_id: string | null;
  refunded_amount: number;
  decline_code: string | null;
  decline_reason: string | null;
  parent_operation_id: string | null;
  description: string | null;
  /** Unused (null): an earlier design named the writing operation here; kept so shipped rows stay valid. */
  opened_by: string | null;
  created_at: number;
  updated_at: number;
  /** When the workflow acknowledged counting this operation (null: not yet, or never: a lost workflow task). */
  counted_at: number | null;
}

export interface CallbacksTable {
  id: Generated<number>;
  /** ipn | return */
  kind: string;
  instrument_id: string | null;
  caller_reference: string | null;
  transaction_id: string | null;
  status: string | null;
  /** The callback's parameters as received, signature fields removed. */
  parameters: string;
  received_at: number;
}

export interface EventsTable {
  /** Ordered cursor for the event log. */
  seq: Generated<number>;
  id: string;
  type: string;
  instrument_id: string;
  customer_id: string;
  /** Per instrument, from 1, gap-free. */
  sequence: number;
  /** Unique per instrument for the fact the event reports: a retried write adds nothing. */
  event_key: string;
  created_at: number;
  /** JSON text. */
  data: string;
}

/** One row per instrument that has had an event; never pruned, so a sequence is never reused. */
export interface EventSequencesTable {
  instrument_id: string;
  /** The instrument's highest event sequence so far. */
  last_sequence: number;
}

export interface WebhookEndpointsTable {
  /** we_… */
  id: string;
  url: string;
  /** JSON array of event types, or ["*"]. */
  events: string;
  description: string | null;
  /** whsec_…: the HMAC key of the endpoint's signatures (kept, since every delivery is signed with it). */
  secret: string;
  /** The creating request's Idempotency-Key, and a hash of its body: a retried create answers the same endpoint. */
  idempotency_key: string | null;
  request_hash: string | null;
  created_at: number;
  last_success_at: number | null;
  disabled_at: number | null;
  disabled_reason: string | null;
  deleted_at: number | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveriesTable {
  id: Generated<number>;
  event_seq: number;
  event_id: string;
  endpoint_id: string;
  status: DeliveryStatus;
  attempts: number;
  created_at: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: number | null;
  /** A deliverer's lease: no other deliverer claims the row before this time. */
  locked_until: number | null;
  locked_by: string | null;
}

export interface DeliveryAttemptsTable {
  id: Generated<number>;
  delivery_id: number;
  event_id: string;
  endpoint_id: string;
  /** 1, 2, … */
  attempt: number;
  at: number;
  /** The receiver's HTTP status; null when there was no answer (refused, timeout, address not allowed). */
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export interface LedgerDatabase {
  operations: OperationsTable;
  callbacks: CallbacksTable;
  events: EventsTable;
  event_sequences: EventSequencesTable;
  webhook_endpoints: WebhookEndpointsTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
}

export type OperationRow = Selectable<OperationsTable>;
export type EventRow = Selectable<EventsTable>;
export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;
export type DeliveryRow = Selectable<DeliveriesTable>;
export type DeliveryAttemptRow = Selectable<DeliveryAttemptsTable>;
