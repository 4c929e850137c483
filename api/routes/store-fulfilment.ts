// The storefront's fulfilment, a webhook consumer like any merchant's: at start it registers its
// own endpoint (purchase.approved, purchase.declined) through the webhook store, catches up from
// the event log, and from then on verifies each delivery with the client's constructEvent. An
// approved purchase of a catalogue item unlocks its download in the buyer's "Your library"; open
// pages hear of it over server-sent events (GET /store/api/library/events), never by polling.
// Where this API's own URL may not be a webhook endpoint (WEBHOOK_ALLOW_PRIVATE_URLS=false, as in
// the production topology), the backend follows the event log instead, once a second.
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { constructEvent, WebhookSignatureError, type WebhookEvent } from '../../client';
import { SIGNATURE_HEADER } from '../../client/signature';
import { parseDecimal } from '../../fps/money';
import { wireEvent } from '../../webhooks/event-body';
import { checkWebhookUrl, WebhookUrlError } from '../../webhooks/url-policy';
import type { ApiContext } from '../context';
import { ProblemError } from '../problem';
import { route, type RouteSpec } from '../route';
import { apiSchemas } from '../schemas';

export const FULFILMENT_PATH = '/store/webhooks/fps';
export const FULFILMENT_EVENTS = ['purchase.approved', 'purchase.declined'] as const;
/** Comment lines keep idle SSE connections open through proxies that close silent ones. */
const KEEP_ALIVE_MS = 25_000;
const CATCH_UP_PAGE = 500;
/** How often the event log is read when this API's own URL may not be a webhook endpoint. */
const LOG_POLL_MS = 1_000;

export interface CatalogueEntry {
  id: string;
  name: string;
  price: string;
}

export const LibraryItem = z.object({
  purchaseId: z.string(),
  instrumentId: z.string(),
  itemId: z.string(),
  name: z.string(),
  unlockedAt: z.string().meta({ description: 'When its purchase.approved event was created' }),
  eventId: z.string(),
  download: z.string().meta({ description: 'Same-origin URL of the download' }),
});
export type LibraryItem = z.infer<typeof LibraryItem>;
export const Library = z.object({ items: z.array(LibraryItem) });
apiSchemas.add(LibraryItem, { id: 'LibraryItem', description: 'A purchased item the buyer may download' });
apiSchemas.add(Library, { id: 'Library', description: "The buyer's library, newest first" });

/** Keeps the raw bytes of a JSON body for the one route that verifies a signature over them. */
export const keepRawBody = (req: Request, _res: unknown, buf: Buffer): void => {
  if (req.url.startsWith(FULFILMENT_PATH)) (req as Request & { rawBody?: Buffer }).rawBody = buf;
};

type Push =
  { event: 'unlocked'; data: LibraryItem } | { event: 'declined'; data: { purchaseId: string; name: string } };

export class StoreFulfilment {
  /** customerId → purchaseId → item. In memory: the demo shop's "database" (README, Storefront). */
  private readonly libraries = new Map<string, Map<string, LibraryItem>>();
  private readonly streams = new Map<string, Set<Response>>();
  private secret: string | undefined;
  private endpointId: string | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  /** The event log's last sequence applied (catch-up at start, and the poll without an endpoint). */
  private logCursor: number | undefined;
  private logPoll: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: ApiContext,
    private readonly catalogue: readonly CatalogueEntry[],
    private readonly currency: string,
  ) {}

  get endpoint(): string | undefined {
    return this.endpointId;
  }

  /** Registers the endpoint (the same one on every start: its key derives from the URL) and catches up. */
  start(): Promise<void> {
    this.started ??= this.register().catch((err: unknown) => {
      this.started = undefined;
      this.ctx.logger.error({ err }, 'storefront fulfilment could not start');
    });
    this.keepAlive ??= setInterval(() => this.broadcastComment(), KEEP_ALIVE_MS).unref();
    return this.started;
  }

  /** Ends the open event streams (their browsers reconnect to whichever process answers next). */
  stop(): void {
    clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    clearInterval(this.logPoll);
    this.logPoll = undefined;
    for (const set of this.streams.values()) for (const res of set) res.end();
    this.streams.clear();
  }

  private async register(): Promise<void> {
    const store = this.ctx.webhooks;
    if (!store) return; // an API without a record has no events to consume
    const url = new URL(FULFILMENT_PATH, this.ctx.cfg.api.publicUrl).toString();
    const base = `storefront-${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
    const request = { url, events: [...FULFILMENT_EVENTS], description: 'Demo storefront: fulfilment' };
    try {
      await checkWebhookUrl(url, { allowPrivate: this.ctx.cfg.webhooks.allowPrivateUrls });
    } catch (err) {
      if (!(err instanceof WebhookUrlError)) throw err;
      // The production topology refuses private webhook URLs (WEBHOOK_ALLOW_PRIVATE_URLS=false), and
      // this API's own address is one: an endpoint there could never be delivered to. Follow the
      // event log instead, as a consumer catching up after downtime does.
      this.ctx.logger.warn(
        { url, reason: err.message, pollMs: LOG_POLL_MS },
        'storefront fulfilment: its own URL is refused as a webhook URL; following the event log instead',
      );
      await this.followEventLog();
      return;
    }
    let { endpoint } = await store.createEndpoint({ ...request, idempotencyKey: base });
    if (endpoint.deleted_at !== null || endpoint.disabled_at !== null) {
      // Someone deleted it, or it failed for a whole retry window: a fresh one for this start.
      ({ endpoint } = await store.createEndpoint({ ...request, idempotencyKey: `${base}-${Date.now()}` }));
    }
    this.secret = endpoint.secret;
    this.endpointId = endpoint.id;
    // Deliveries exist only for events after the endpoint; what came before is in the log.
    await this.catchUp(false);
    this.ctx.logger.info({ endpointId: endpoint.id, url }, 'storefront fulfilment registered');
  }

  /** Reads the event log past the last event seen; `push`: tell open pages (not at start). */
  private async catchUp(push: boolean): Promise<void> {
    const store = this.ctx.webhooks!;
    for (;;) {
      const { rows, hasMore } = await store.eventLog({
        after: this.logCursor,
        // At start only what unlocks items; live, the declines too (pages are told of them).
        type: push ? undefined : 'purchase.approved',
        limit: CATCH_UP_PAGE,
      });
      for (const row of rows) this.apply(wireEvent(row), push);
      this.logCursor = rows.at(-1)?.seq ?? this.logCursor;
      if (!hasMore) return;
    }
  }

  /** Without an endpoint: the event log, read every LOG_POLL_MS (on the server, not in the browser). */
  private async followEventLog(): Promise<void> {
    await this.catchUp(false);
    this.logPoll = setInterval(() => {
      this.catchUp(true).catch((err: unknown) =>
        this.ctx.logger.warn({ err }, 'storefront fulfilment: reading the event log failed; next try soon'),
      );
    }, LOG_POLL_MS).unref();
  }

  library(customerId: string): LibraryItem[] {
    return [...(this.libraries.get(customerId)?.values() ?? [])].sort((a, b) =>
      b.unlockedAt.localeCompare(a.unlockedAt),
    );
  }

  item(customerId: string, purchaseId: string): LibraryItem | undefined {
    return this.libraries.get(customerId)?.get(purchaseId);
  }

  /** The catalogue item a purchase bought: the storefront's purchases carry the item's name and price. */
  private catalogueItem(data: Record<string, unknown>): CatalogueEntry | undefined {
    const amount = data.amount as { amount?: unknown; currency?: unknown } | undefined;
    if (typeof amount?.amount !== 'string' || amount.currency !== this.currency) return undefined;
    return this.catalogue.find(
      (item) =>
        item.name === data.description &&
        parseDecimal(item.price, this.currency) === parseDecimal(amount.amount as string, this.currency),
    );
  }

  /** Applies one event at most once per purchase (delivery is at-least-once). */
  private apply(event: WebhookEvent, push: boolean): void {
    const purchaseId = typeof event.data.id === 'string' ? event.data.id : undefined;
    const item = this.catalogueItem(event.data);
    if (!event.customerId || !event.instrumentId || !purchaseId || !item) return;
    if (event.type === 'purchase.declined') {
      if (push) this.push(event.customerId, { event: 'declined', data: { purchaseId, name: item.name } });
      return;
    }
    if (event.type !== 'purchase.approved') return;
    let library = this.libraries.get(event.customerId);
    if (!library) this.libraries.set(event.customerId, (library = new Map()));
    if (library.has(purchaseId)) return;
    const unlocked: LibraryItem = {
      purchaseId,
      instrumentId: event.instrumentId,
      itemId: item.id,
      name: item.name,
      unlockedAt: event.createdAt,
      eventId: event.id,
      download: `/store/api/library/${encodeURIComponent(purchaseId)}/download`,
    };
    library.set(purchaseId, unlocked);
    if (push) this.push(event.customerId, { event: 'unlocked', data: unlocked });
  }

  private push(customerId: string, message: Push): void {
    for (const res of this.streams.get(customerId) ?? [])
      res.write(`event: ${message.event}\ndata: ${JSON.stringify(message.data)}\n\n`);
  }

  private broadcastComment(): void {
    for (const set of this.streams.values()) for (const res of set) res.write(': keep-alive\n\n');
  }

  /** POST /store/webhooks/fps: verify over the raw bytes, then apply. */
  receive(req: Request, res: Response): void {
    const raw = (req as Request & { rawBody?: Buffer }).rawBody;
    if (!this.secret) throw new ProblemError(503, 'ledger_unavailable', 'the storefront has not registered yet');
    if (!raw) throw new ProblemError(415, 'unsupported_media_type', 'send the event as application/json');
    let event: WebhookEvent;
    try {
      event = constructEvent(raw, req.headers[SIGNATURE_HEADER.toLowerCase()], this.secret);
    } catch (err) {
      if (err instanceof WebhookSignatureError)
        throw new ProblemError(400, 'callback_unverified', `${SIGNATURE_HEADER}: ${err.message}`, {
          field: SIGNATURE_HEADER,
          reason: err.code,
        });
      throw err;
    }
    this.apply(event, true);
    res.status(204).end();
  }

  /** GET /store/api/library/events: the library now, then each change, as server-sent events. */
  subscribe(customerId: string, req: Request, res: Response): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    // The browser's EventSource reconnects on its own after 2 s if the stream drops.
    res.write(`retry: 2000\nevent: library\ndata: ${JSON.stringify({ items: this.library(customerId) })}\n\n`);
    let set = this.streams.get(customerId);
    if (!set) this.streams.set(customerId, (set = new Set()));
    set.add(res);
    req.on('close', () => {
      set.delete(res);
      if (set.size === 0 && this.streams.get(customerId) === set) this.streams.delete(customerId);
    });
  }
}

/** The fulfilment's routes; `session` resolves the buyer (storefront cookie) or throws 401. */
export function fulfilmentRoutes(
  fulfilment: StoreFulfilment,
  session: (req: Request, res: Response) => string,
): RouteSpec[] {
  const sessionProblem = { 401: 'No storefront session (open the page first)' };
  const noStore: RequestHandler = (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  };
  return [
    route({
      method: 'post',
      path: FULFILMENT_PATH,
      operationId: 'storeFulfilmentWebhook',
      summary: 'Storefront: its own webhook endpoint (purchase.approved unlocks a download)',
      description:
        'Registered by the storefront at start; verifies Fps-Signature over the raw body with the client’s constructEvent.',
      tag: 'storefront',
      security: 'none',
      responses: {
        204: 'Applied (or already applied: deliveries are at-least-once)',
        400: 'Fps-Signature missing, malformed, too old or not matching (callback_unverified; reason says which)',
        503: 'The storefront has not registered its endpoint yet',
      },
      handler: (req, res) => fulfilment.receive(req, res),
    }),
    route({
      method: 'get',
      path: '/store/api/library',
      operationId: 'storeLibrary',
      summary: 'Storefront: the buyer’s library (every approved purchase, newest first)',
      tag: 'storefront',
      security: 'storeSession',
      responses: { 200: { description: 'The library', schema: Library }, ...sessionProblem },
      handler: (req, res) => {
        res.json({ items: fulfilment.library(session(req, res)) });
      },
    }),
    route({
      method: 'get',
      path: '/store/api/library/events',
      operationId: 'storeLibraryEvents',
      summary: 'Storefront: the buyer’s library as server-sent events',
      description:
        '`library` (the whole library, first), then `unlocked` (a LibraryItem) when a purchase.approved arrives and ' +
        '`declined` ({purchaseId, name}) when a pending purchase is declined.',
      tag: 'storefront',
      security: 'storeSession',
      responses: {
        200: { description: 'An event stream', contentType: 'text/event-stream', schema: z.string() },
        ...sessionProblem,
      },
      handler: (req, res) => fulfilment.subscribe(session(req, res), req, res),
    }),
    route({
      method: 'get',
      path: '/store/api/library/:purchaseId/download',
      operationId: 'storeDownload',
      summary: 'Storefront: download a purchased item (only once its purchase is approved)',
      tag: 'storefront',
      security: 'storeSession',
      before: [noStore],
      params: { purchaseId: z.string().max(64) },
      responses: {
        200: { description: 'The item', contentType: 'text/plain', schema: z.string() },
        ...sessionProblem,
        404: 'Not in the buyer’s library (not bought, not approved yet, or another buyer’s)',
      },
      handler: (req, res) => {
        const customerId = session(req, res);
        const purchaseId = String(req.params.purchaseId);
        const item = fulfilment.item(customerId, purchaseId);
        if (!item)
          throw new ProblemError(404, 'not_found', `no purchase ${JSON.stringify(purchaseId)} in your library`);
        res
          .type('text/plain')
          .attachment(`${item.itemId}-${purchaseId}.txt`)
          .send(
            `Pixel & Page: ${item.name}\npurchase ${purchaseId} on instrument ${item.instrumentId}\n` +
              `unlocked ${item.unlockedAt} by event ${item.eventId}\n`,
          );
      },
    }),
  ];
}
