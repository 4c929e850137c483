// @fps-temporal/client: the merchant API as typed methods. Every POST carries an Idempotency-Key
// (yours, or one generated per call) and is retried with it on 503, 504 and network errors; errors
// are FpsApiError with the problem's `code`; pages are async iterators; constructEvent verifies a
// webhook. Global fetch and node:crypto only: nothing of the server is loaded at run time.
import { DEFAULT_TOLERANCE_SECONDS, verify } from './signature';
import {
  DEFAULT_RETRY,
  newIdempotencyKey,
  send,
  type HttpOptions,
  type RequestOptions,
  type RetryOptions,
} from './http';
import type * as t from './types';

export * from './errors';
export * from './signature';
export type * from './types';
export { newIdempotencyKey, type RetryOptions } from './http';

export interface FpsClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:3000 */
  baseUrl: string;
  apiKey: string;
  retry?: Partial<RetryOptions>;
  /** Per-attempt timeout in ms (default 35 000, above the API's 30 s operation timeout). */
  timeoutMs?: number;
  /** Another fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  onRetry?: HttpOptions['onRetry'];
}

/** Per-call options of a POST. */
export interface PostOptions {
  /** Makes the call safe to repeat (it is the operation's id); one is generated when absent. */
  idempotencyKey?: string;
}

export interface TransactionQuery {
  limit?: number;
  operation?: t.OperationKind;
  status?: t.RecordedStatus;
  /** A UTC date (YYYY-MM-DD) or an ISO 8601 date-time. */
  from?: string;
  to?: string;
}

export interface EventQuery {
  /** A nextCursor from an earlier page: only newer events. */
  after?: string;
  type?: t.EventType | 'webhook.test';
  instrumentId?: string;
  limit?: number;
}

/** Items of a paged list, fetched a page at a time as they are consumed; `pages()` yields whole pages. */
export interface Paged<Item, Page> extends AsyncIterable<Item> {
  pages(): AsyncIterable<Page>;
}

/** The event log after the last page: `cursor` is where a later call resumes (EventQuery.after). */
export interface EventStream extends Paged<t.WebhookEvent, t.EventList> {
  readonly cursor: string | undefined;
}

export class FpsClient {
  private readonly http: HttpOptions;

  constructor(options: FpsClientOptions) {
    this.http = {
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      retry: { ...DEFAULT_RETRY, ...options.retry },
      timeoutMs: options.timeoutMs ?? 35_000,
      fetch: options.fetch ?? globalThis.fetch,
      onRetry: options.onRetry,
    };
  }

  private async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const answer = await send(this.http, method, path, options);
    return (answer.text ? JSON.parse(answer.text) : undefined) as T;
  }

  private post<T>(path: string, body: unknown, options: PostOptions | undefined, prefix: string): Promise<T> {
    return this.json<T>('POST', path, { body, idempotencyKey: options?.idempotencyKey ?? newIdempotencyKey(prefix) });
  }

  // ---- instruments -----------------------------------------------------------------------------

  /** Starts the instrument's workflow; send the buyer to `authorizationUrl`. The same key answers the same instrument. */
  createInstrument(
    customerId: string,
    request: t.CreateInstrumentRequest,
    options?: PostOptions,
  ): Promise<t.CreatedInstrument> {
    return this.post(`/customers/${enc(customerId)}/instruments`, request, options, 'ins');
  }

  /**
   * The signed FPS Co-Branded UI URL to send the buyer to (the seed's `link_url`). Creates the
   * instrument, or with the key of an earlier call answers that instrument's URL again.
   */
  async authorizationUrl(
    customerId: string,
    request: t.CreateInstrumentRequest,
    options: Required<PostOptions>,
  ): Promise<string> {
    return (await this.createInstrument(customerId, request, options)).authorizationUrl;
  }

  instrument(instrumentId: string): Promise<t.Instrument> {
    return this.json('GET', `/instruments/${enc(instrumentId)}`);
  }

  /**
   * Changes a prepaid instrument's balance rules (PATCH): a field sent replaces its rule, null
   * removes it, a field left out keeps it. Idempotent (the same rules again change nothing), so a
   * retry needs no Idempotency-Key.
   */
  updateInstrument(instrumentId: string, request: t.UpdateInstrumentRequest): Promise<t.Instrument> {
    return this.json('PATCH', `/instruments/${enc(instrumentId)}`, { body: request });
  }

  instruments(customerId: string): Promise<t.InstrumentList> {
    return this.json('GET', `/customers/${enc(customerId)}/instruments`);
  }

  // ---- money operations: approved or pending answers; a decline throws PaymentDeclinedError -----

  /** outcome "approved" (201) or "pending" (202: follow statusUrl, or call again with the same key). */
  purchase(instrumentId: string, request: t.PurchaseRequest, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/purchases`, request, options, 'pur');
  }

  /** The purchase as the record holds it, with its refunds, at any age. */
  getPurchase(instrumentId: string, purchaseId: string): Promise<t.PurchaseRecord> {
    return this.json('GET', `/instruments/${enc(instrumentId)}/purchases/${enc(purchaseId)}`);
  }

  /** Reserve: a purchase on a single-use instrument in `reserve` mode (transactionStatus Reserved); capture or void it. */
  authorize(instrumentId: string, request: t.PurchaseRequest, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/purchases`, request, options, 'rsv');
  }

  /** Captures the reservation, all of it or `amount` (FPS Settle). */
  capture(instrumentId: string, request: t.CaptureRequest = {}, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/capture`, request, options, 'cap');
  }

  /** Cancels the reservation (FPS Cancel). */
  void(instrumentId: string, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/void`, {}, options, 'void');
  }

  /** Refunds a purchase, all that is refundable or `amount` (FPS Refund; the seed's `credit`). */
  credit(instrumentId: string, request: t.RefundRequest, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/refunds`, request, options, 'rfd');
  }

  /** Adds money to a prepaid balance (FundPrepaid). */
  fund(instrumentId: string, request: t.FundRequest, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/fund`, request, options, 'fnd');
  }

  /** Settles postpaid debt, all of it or `amount` (SettleDebt). */
  settle(instrumentId: string, request: t.SettleRequest = {}, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/settle`, request, options, 'stl');
  }

  /** Writes postpaid debt off (WriteOffDebt); the account then closes. */
  writeOff(instrumentId: string, request: t.WriteOffRequest = {}, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/write-off`, request, options, 'wof');
  }

  close(instrumentId: string, request: t.CloseRequest = {}, options?: PostOptions): Promise<t.OperationResult> {
    return this.post(`/instruments/${enc(instrumentId)}/close`, request, options, 'cls');
  }

  // ---- the record ------------------------------------------------------------------------------

  /** Recorded operations, newest first, fetched page by page as the loop consumes them. */
  transactions(instrumentId: string, query: TransactionQuery = {}): Paged<t.RecordedOperation, t.TransactionPage> {
    const pages = async function* (this: FpsClient): AsyncGenerator<t.TransactionPage> {
      let cursor: string | undefined;
      do {
        const page = await this.json<t.TransactionPage>('GET', `/instruments/${enc(instrumentId)}/transactions`, {
          query: { ...query, cursor },
        });
        yield page;
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
    }.bind(this);
    return paged(pages, (page) => page.data);
  }

  /** Opening and closing balance or debt and every line; days are UTC, `to` inclusive. */
  statement(instrumentId: string, period: { from?: string; to?: string } = {}): Promise<t.Statement> {
    return this.json('GET', `/instruments/${enc(instrumentId)}/statement`, { query: period });
  }

  /** The same statement as CSV text. */
  async statementCsv(instrumentId: string, period: { from?: string; to?: string } = {}): Promise<string> {
    return (
      await send(this.http, 'GET', `/instruments/${enc(instrumentId)}/statement`, { query: period, accept: 'text/csv' })
    ).text;
  }

  customerStatement(customerId: string, month: string): Promise<t.CustomerStatement> {
    return this.json('GET', `/customers/${enc(customerId)}/statement`, { query: { month } });
  }

  // ---- webhooks and the event log ----------------------------------------------------------------

  readonly webhookEndpoints = {
    /** The answer holds the signing `secret`, shown only here. */
    create: (request: t.CreateWebhookEndpointRequest, options?: PostOptions): Promise<t.CreatedWebhookEndpoint> =>
      this.post('/webhook-endpoints', request, options, 'we'),
    list: async (): Promise<t.WebhookEndpoint[]> =>
      (await this.json<t.WebhookEndpointList>('GET', '/webhook-endpoints')).data,
    get: (id: string): Promise<t.WebhookEndpoint> => this.json('GET', `/webhook-endpoints/${enc(id)}`),
    delete: async (id: string): Promise<void> => {
      await send(this.http, 'DELETE', `/webhook-endpoints/${enc(id)}`);
    },
    /** Queues a webhook.test event to this endpoint only. */
    test: (id: string, options?: PostOptions): Promise<t.WebhookEvent> =>
      this.post(`/webhook-endpoints/${enc(id)}/test`, undefined, options, 'tst'),
  };

  /** The event log after `query.after`, oldest first, until the newest; then `cursor` resumes it. */
  events(query: EventQuery = {}): EventStream {
    let cursor = query.after;
    const pages = async function* (this: FpsClient): AsyncGenerator<t.EventList> {
      for (;;) {
        const page = await this.json<t.EventList>('GET', '/events', { query: { ...query, after: cursor } });
        cursor = page.nextCursor ?? cursor;
        yield page;
        if (!page.hasMore) return;
      }
    }.bind(this);
    const stream = paged(pages, (page) => page.data);
    return Object.defineProperty(stream, 'cursor', { get: () => cursor, enumerable: true }) as EventStream;
  }

  event(id: string): Promise<t.EventWithDeliveries> {
    return this.json('GET', `/events/${enc(id)}`);
  }
}

/**
 * Verifies a delivered webhook over the exact bytes received and parses it. Throws
 * WebhookSignatureError (`code`: malformed_header, no_v1_signature, timestamp_outside_tolerance,
 * mismatch) unless `signatureHeader` (Fps-Signature) signs `rawBody` with `secret` within
 * `toleranceSeconds` of now.
 */
export function constructEvent(
  rawBody: string | Uint8Array,
  signatureHeader: string | string[] | undefined | null,
  secret: string,
  toleranceSeconds: number = DEFAULT_TOLERANCE_SECONDS,
): t.WebhookEvent {
  const header = Array.isArray(signatureHeader) ? signatureHeader.join(',') : signatureHeader;
  const bytes = typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.length);
  verify(bytes, header, secret, toleranceSeconds);
  return JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8')) as t.WebhookEvent;
}

const enc = encodeURIComponent;

function paged<Item, Page>(pages: () => AsyncIterable<Page>, items: (page: Page) => Item[]): Paged<Item, Page> {
  return {
    pages,
    async *[Symbol.asyncIterator]() {
      for await (const page of pages()) yield* items(page);
    },
  };
}
