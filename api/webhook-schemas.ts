// Request and response shapes of webhook endpoints and the event log, in zod, registered with the
// API's named schemas (api/schemas.ts) so they appear in the OpenAPI document.
import { z } from 'zod';
import { EVENT_TYPES, TEST_EVENT_TYPE } from '../store/event-types';
import { ALL_EVENTS } from '../store/webhooks';
import { apiSchemas, InstrumentId, PageCursor, PageLimit } from './schemas';

function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  apiSchemas.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

export const EventType = named(
  'EventType',
  z.enum(EVENT_TYPES),
  'A merchant event type (webhook.test is sent only by POST /webhook-endpoints/{id}/test)',
);

export const WebhookEndpointId = z
  .string()
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/)
  .meta({ description: 'Webhook endpoint id', example: 'we_3f9a0c1b2d4e5f60718a' });

export const EventId = z
  .string()
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/)
  .meta({ description: 'Event id', example: 'evt_0b9c2d7e4f1a4b3c8d6e5f4a3b2c1d0e' });

export const CreateWebhookEndpointRequest = named(
  'CreateWebhookEndpointRequest',
  z.strictObject({
    url: z.string().min(1).max(2048).meta({
      description:
        'http(s) URL that receives POSTs. Loopback and private addresses are refused unless WEBHOOK_ALLOW_PRIVATE_URLS is on.',
      example: 'https://merchant.example/webhooks/fps',
    }),
    events: z
      .array(z.union([z.literal(ALL_EVENTS), EventType]))
      .min(1)
      .max(EVENT_TYPES.length)
      .refine((events) => !events.includes(ALL_EVENTS) || events.length === 1, {
        message: '"*" subscribes to everything: send it alone',
      })
      .refine((events) => new Set(events).size === events.length, { message: 'an event type is listed twice' })
      .meta({
        description: 'Event types to receive, or ["*"] for all',
        example: ['purchase.approved', 'refund.succeeded'],
      }),
    description: z.string().max(200).optional(),
  }),
);

export const WebhookEndpoint = named(
  'WebhookEndpoint',
  z.object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    status: z.enum(['enabled', 'disabled']),
    createdAt: z.string(),
    lastSuccessAt: z.string().nullable(),
    disabledAt: z.string().nullable(),
    disabledReason: z
      .string()
      .nullable()
      .meta({ description: 'Why deliveries stopped, e.g. nothing succeeded for the whole retry window' }),
    deliveries: z
      .object({ pending: z.number().int(), delivered: z.number().int(), failed: z.number().int() })
      .optional(),
  }),
  'A webhook endpoint (never with its secret, which is shown once, at creation)',
);

export type WebhookEndpointBody = z.infer<typeof WebhookEndpoint>;

export const CreatedWebhookEndpoint = named(
  'CreatedWebhookEndpoint',
  WebhookEndpoint.extend({
    secret: z.string().meta({
      description: 'whsec_…: the HMAC-SHA256 key of Fps-Signature. Shown only in this answer; store it.',
      example: 'whsec_Q2xhcmlmeWluZyB0aGUgc2VjcmV0IGZvcm1hdA',
    }),
  }),
);

export const WebhookEndpointList = named('WebhookEndpointList', z.object({ data: z.array(WebhookEndpoint) }));

export const Event = named(
  'Event',
  z.object({
    id: z.string(),
    type: z.string().meta({ description: 'An EventType, or webhook.test' }),
    createdAt: z.string(),
    instrumentId: z.string().nullable(),
    customerId: z.string().nullable(),
    sequence: z.number().int().meta({ description: 'Per instrument, from 1, without gaps' }),
    data: z.record(z.string(), z.unknown()).meta({ description: 'The operation result or the instrument snapshot' }),
  }),
  'A merchant event: the webhook body and an event log entry',
);

export const EventList = named(
  'EventList',
  z.object({
    data: z.array(Event),
    nextCursor: z.string().nullable().meta({
      description: 'Pass as `after` for the next page (or to poll for newer events); null when nothing was ever listed',
    }),
    hasMore: z.boolean(),
  }),
);

export const DeliveryAttempt = z.object({
  attempt: z.number().int(),
  at: z.string(),
  statusCode: z.number().int().nullable(),
  error: z.string().nullable(),
  durationMs: z.number().int(),
});

export const EventDelivery = named(
  'EventDelivery',
  z.object({
    endpointId: z.string(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    nextAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    attemptLog: z.array(DeliveryAttempt),
  }),
  "One endpoint's delivery of an event, with every attempt",
);

export const EventWithDeliveries = named('EventWithDeliveries', Event.extend({ deliveries: z.array(EventDelivery) }));

/** GET /events's query (parsed by api/ledger-view.ts's parseQuery: 400 invalid_parameter naming the one at fault). */
export const eventLogQuery = {
  after: { schema: PageCursor, description: 'A nextCursor from an earlier answer' },
  type: { schema: z.union([EventType, z.literal(TEST_EVENT_TYPE)]), description: 'Only this event type' },
  instrumentId: { schema: InstrumentId, description: 'Only this instrument’s events' },
  limit: { schema: PageLimit, description: 'Page size, 1–500 (default 50)' },
};
