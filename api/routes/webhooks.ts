// Webhook endpoints (/webhook-endpoints: register, list, read, delete, send a test event) and the
// event log (/events: catch-up after downtime, one event with its delivery attempts).
import type { Request, Response } from 'express';
import { randomUUID } from 'node:crypto';
import type { EventRow, WebhookEndpointRow } from '../../store/schema';
import { IdempotencyConflict, type WebhookStore } from '../../store/webhooks';
import { wireEvent } from '../../webhooks/event-body';
import { checkWebhookUrl, WebhookUrlError } from '../../webhooks/url-policy';
import { idempotencyKey, type ApiContext } from '../context';
import { invalidParameter, parseQuery } from '../ledger-view';
import { ProblemError } from '../problem';
import { route, type RouteSpec } from '../route';
import * as w from '../webhook-schemas';
import { parseWith } from '../validate';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function renderEndpoint(row: WebhookEndpointRow): w.WebhookEndpointBody {
  return {
    id: row.id,
    url: row.url,
    events: JSON.parse(row.events) as string[],
    description: row.description,
    status: row.disabled_at === null ? 'enabled' : 'disabled',
    createdAt: new Date(row.created_at).toISOString(),
    lastSuccessAt: iso(row.last_success_at),
    disabledAt: iso(row.disabled_at),
    disabledReason: row.disabled_reason,
  };
}

/** Opaque event-log cursor: the outbox's seq. */
const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const m = /^seq:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw invalidParameter('after', 'not a cursor from this API');
  return Number(m[1]);
}

export function webhookRoutes(ctx: ApiContext): RouteSpec[] {
  const store = (): WebhookStore => {
    if (!ctx.webhooks) throw new ProblemError(503, 'ledger_unavailable', 'this API runs without its record');
    return ctx.webhooks;
  };
  const policy = { allowPrivate: ctx.cfg.webhooks.allowPrivateUrls };

  async function endpointParam(req: Request, res: Response): Promise<WebhookEndpointRow> {
    const id = req.params.endpointId;
    const row =
      typeof id === 'string' && w.WebhookEndpointId.safeParse(id).success ? await store().endpoint(id) : undefined;
    if (!row) throw new ProblemError(404, 'webhook_endpoint_not_found', `no webhook endpoint ${JSON.stringify(id)}`);
    res.locals.endpointId = row.id;
    return row;
  }

  const problems = { 401: 'Missing or invalid API key', 404: 'Unknown webhook endpoint' };

  return [
    route({
      method: 'post',
      path: '/webhook-endpoints',
      operationId: 'createWebhookEndpoint',
      summary: 'Register a webhook endpoint; its signing secret is in this answer only',
      description:
        'Events of the listed types (or all, with ["*"]) created from now on are POSTed to `url`, signed with `Fps-Signature`. ' +
        'An Idempotency-Key makes the create retryable: the same key and body answer the same endpoint (and secret).',
      tag: 'webhooks',
      security: 'apiKey',
      idempotencyKey: true,
      body: { schema: w.CreateWebhookEndpointRequest, required: true },
      responses: {
        201: { description: 'Created (or the one this Idempotency-Key created)', schema: w.CreatedWebhookEndpoint },
        401: problems[401],
        409: 'The Idempotency-Key created an endpoint with another body (idempotency_key_reused)',
        422: 'Invalid body (validation_failed: unknown event type, …) or a URL that is not allowed (url_not_allowed)',
      },
      handler: async (req, res) => {
        const body = parseWith(w.CreateWebhookEndpointRequest, req.body);
        const key = idempotencyKey(req);
        let url: URL;
        try {
          url = await checkWebhookUrl(body.url, policy);
        } catch (err) {
          if (err instanceof WebhookUrlError)
            throw new ProblemError(422, 'url_not_allowed', `url: ${err.message}`, { field: 'url', reason: err.code });
          throw err;
        }
        try {
          const { endpoint } = await store().createEndpoint({
            url: url.toString(),
            events: body.events,
            description: body.description,
            idempotencyKey: key,
          });
          res.locals.endpointId = endpoint.id;
          res.status(201).json({ ...renderEndpoint(endpoint), secret: endpoint.secret });
        } catch (err) {
          if (err instanceof IdempotencyConflict)
            throw new ProblemError(409, 'idempotency_key_reused', err.message, { field: 'Idempotency-Key' });
          throw err;
        }
      },
    }),
    route({
      method: 'get',
      path: '/webhook-endpoints',
      operationId: 'listWebhookEndpoints',
      summary: 'List webhook endpoints (without secrets)',
      tag: 'webhooks',
      security: 'apiKey',
      responses: {
        200: { description: 'The endpoints, oldest first', schema: w.WebhookEndpointList },
        401: problems[401],
      },
      handler: async (_req, res) => {
        res.json({ data: (await store().endpoints()).map(renderEndpoint) });
      },
    }),
    route({
      method: 'get',
      path: '/webhook-endpoints/:endpointId',
      operationId: 'getWebhookEndpoint',
      summary: 'Read a webhook endpoint: status (disabled and why), deliveries by status',
      tag: 'webhooks',
      security: 'apiKey',
      params: { endpointId: w.WebhookEndpointId },
      responses: { 200: { description: 'The endpoint', schema: w.WebhookEndpoint }, ...problems },
      handler: async (req, res) => {
        const row = await endpointParam(req, res);
        res.json({ ...renderEndpoint(row), deliveries: await store().deliveryCounts(row.id) });
      },
    }),
    route({
      method: 'delete',
      path: '/webhook-endpoints/:endpointId',
      operationId: 'deleteWebhookEndpoint',
      summary: 'Delete a webhook endpoint: nothing more is sent to it, pending deliveries fail',
      tag: 'webhooks',
      security: 'apiKey',
      params: { endpointId: w.WebhookEndpointId },
      responses: { 204: 'Deleted', ...problems },
      handler: async (req, res) => {
        const row = await endpointParam(req, res);
        await store().deleteEndpoint(row.id);
        res.status(204).end();
      },
    }),
    route({
      method: 'post',
      path: '/webhook-endpoints/:endpointId/test',
      operationId: 'testWebhookEndpoint',
      summary: 'Send a webhook.test event to this endpoint only',
      description:
        'Delivered (and retried) like any event; follow it with GET /events/{id}. The same Idempotency-Key answers the same test event.',
      tag: 'webhooks',
      security: 'apiKey',
      idempotencyKey: true,
      params: { endpointId: w.WebhookEndpointId },
      responses: {
        202: { description: 'Queued for delivery', schema: w.Event },
        ...problems,
        409: 'The endpoint is disabled (invalid_state)',
      },
      handler: async (req, res) => {
        const row = await endpointParam(req, res);
        if (row.disabled_at !== null)
          throw new ProblemError(409, 'invalid_state', `endpoint ${row.id} is disabled: ${row.disabled_reason ?? ''}`);
        const event = await store().queueTestEvent(row.id, idempotencyKey(req) ?? randomUUID());
        ctx.onEventQueued?.();
        res.status(202).json(wireEvent(event));
      },
    }),
    route({
      method: 'get',
      path: '/events',
      operationId: 'listEvents',
      summary: 'The event log: events after a cursor, oldest first',
      description:
        'For catching up after downtime: page with `after` = the previous answer’s `nextCursor` until `hasMore` is false, ' +
        'then keep polling with the last `nextCursor`. webhook.test events are listed only with type=webhook.test.',
      tag: 'webhooks',
      security: 'apiKey',
      query: w.eventLogQuery,
      responses: {
        200: { description: 'A page of events', schema: w.EventList },
        401: problems[401],
        400: 'A query parameter is invalid (invalid_parameter; `field` names it)',
      },
      handler: async (req, res) => {
        const q = parseQuery(req.query, w.eventLogQuery);
        const after = q.after === undefined ? undefined : decodeCursor(q.after);
        const { rows, hasMore } = await store().eventLog({
          after,
          type: q.type,
          instrumentId: q.instrumentId,
          limit: q.limit ?? 50,
        });
        const last = rows.at(-1)?.seq ?? after;
        res.json({
          data: rows.map(wireEvent),
          nextCursor: last === undefined ? null : encodeCursor(last),
          hasMore,
        });
      },
    }),
    route({
      method: 'get',
      path: '/events/:eventId',
      operationId: 'getEvent',
      summary: 'One event, with its deliveries and every attempt',
      tag: 'webhooks',
      security: 'apiKey',
      params: { eventId: w.EventId },
      responses: {
        200: { description: 'The event', schema: w.EventWithDeliveries },
        401: problems[401],
        404: 'Unknown event',
      },
      handler: async (req, res) => {
        const id = req.params.eventId;
        const row: EventRow | undefined =
          typeof id === 'string' && w.EventId.safeParse(id).success ? await store().eventById(id) : undefined;
        if (!row) throw new ProblemError(404, 'event_not_found', `no event ${JSON.stringify(id)}`);
        const deliveries = await store().deliveriesOf(row.id);
        res.json({
          ...wireEvent(row),
          deliveries: deliveries.map((d) => ({
            endpointId: d.endpoint_id,
            status: d.status,
            attempts: d.attempts,
            nextAttemptAt: d.status === 'pending' ? iso(d.next_attempt_at) : null,
            deliveredAt: iso(d.delivered_at),
            lastStatusCode: d.last_status_code,
            lastError: d.last_error,
            attemptLog: d.attemptRows.map((a) => ({
              attempt: a.attempt,
              at: new Date(a.at).toISOString(),
              statusCode: a.status_code,
              error: a.error,
              durationMs: a.duration_ms,
            })),
          })),
        });
      },
    }),
  ];
}
