// Every merchant event type, in one list: the API refuses subscriptions to anything else, and the
// emitters (store/operation-events.ts for money, the workflow's lifecycle activity) may only use these.
export const EVENT_TYPES = [
  'instrument.authorized',
  'instrument.activated',
  'instrument.closed',
  'instrument.expired',
  'instrument.delinquent',
  'purchase.pending',
  'purchase.approved',
  'purchase.declined',
  'refund.succeeded',
  'refund.failed',
  'funding.succeeded',
  'funding.failed',
  'settlement.succeeded',
  'settlement.failed',
  'debt.written_off',
  'capture.succeeded',
  'void.succeeded',
  'balance.low',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Sent only by POST /webhook-endpoints/{id}/test, only to that endpoint; not in the event log's default listing. */
export const TEST_EVENT_TYPE = 'webhook.test';

export const isEventType = (type: string): type is EventType => (EVENT_TYPES as readonly string[]).includes(type);
