// The event as merchants receive it, in a webhook body and in the event log: one rendering for both.
import { renderEvent } from '../store/ledger';
import { TEST_EVENT_TYPE } from '../store/event-types';
import type { EventRow } from '../store/schema';

export interface WireEvent {
  id: string;
  type: string;
  createdAt: string;
  /** null only for webhook.test */
  instrumentId: string | null;
  customerId: string | null;
  /** Per instrument, from 1, gap-free (per endpoint for webhook.test). */
  sequence: number;
  data: Record<string, unknown>;
}

export function wireEvent(row: EventRow): WireEvent {
  const event = renderEvent(row);
  // A test event is stored under its endpoint's id; it concerns no instrument or customer.
  return row.type === TEST_EVENT_TYPE ? { ...event, instrumentId: null, customerId: null } : event;
}
