// The FPS Query API client: signs each action with Signature V2, sends it over HTTP and turns the
// answer into a typed result or a typed FpsError (retryable or final). Transport only, no retries:
// the caller (a Temporal activity) retries retryable errors with the same CallerReference.
import http from 'node:http';
import https from 'node:https';
import { FPS_API_VERSION, type FpsAction, type FpsRequest, type FpsResult, type PaymentGateway } from './actions';
import { FpsError } from './errors';
import { MoneyError } from './money';
import { encodeRequest } from './requests';
import { signingHost, signQueryParams, toQueryString, type HmacMethod } from './signature';
import { parseResponseXml } from './xml';

export interface FpsClientOptions {
  /** Query API URL, e.g. https://fps.sandbox.amazonaws.com/ or http://127.0.0.1:8701/. */
  endpoint: string;
  accessKeyId: string;
  secretKey: string;
  /** Whole request, connection to last body byte. Default 10 s. */
  timeoutMs?: number;
  /** Default POST (form body); GET puts the signed parameters in the query string. */
  httpMethod?: 'GET' | 'POST';
  signatureMethod?: HmacMethod;
  /** FPS API version; default 2008-09-17. */
  version?: string;
  /** Clock for the Timestamp parameter (tests). */
  now?: () => Date;
  /** Told about each call (metrics, traces); default: the process's observer (observeFpsCalls). */
  observer?: FpsCallObserver;
}

/** How one call ended, for observers: the HTTP status when an answer arrived, the FpsError code when it failed. */
export interface FpsCallEnd {
  httpStatus?: number;
  errorCode?: string;
}

/**
 * Sees every call of a client: `start` runs as the request is about to be sent, in the caller's
 * async context (so a trace span started there is the HTTP call's); the function it returns runs
 * once when the call ends. Must not throw. Activities build their own FpsClient, so the worker
 * installs one for the whole process with observeFpsCalls().
 */
export interface FpsCallObserver {
  start(action: FpsAction): (end: FpsCallEnd) => void;
}

let processObserver: FpsCallObserver | undefined;

/** Installs the observer every FpsClient of this process reports to (undefined: none, the default). */
export function observeFpsCalls(observer: FpsCallObserver | undefined): void {
  processObserver = observer;
}

/** What `call` resolves to: the action's typed result plus FPS's RequestId when it sent one. */
export type FpsCallResult<A extends FpsAction> = FpsResult<A> & { requestId?: string };

const DEFAULT_TIMEOUT_MS = 10_000;

// One keep-alive pool per process for every client (activities build one client per worker); the
// agents honour the server's Keep-Alive timeout hint and unref idle sockets, so they never hold a
// process open.
const HTTP_AGENT = new http.Agent({ keepAlive: true, scheduling: 'lifo' });
const HTTPS_AGENT = new https.Agent({ keepAlive: true, scheduling: 'lifo' });

export class FpsClient implements PaymentGateway {
  readonly endpoint: string;
  readonly accessKeyId: string;
  // A private field, so the secret shows up in neither util.inspect, JSON.stringify nor logs.
  readonly #secretKey: string;
  readonly #url: URL;
  readonly #host: string;
  readonly #timeoutMs: number;
  readonly #httpMethod: 'GET' | 'POST';
  readonly #signatureMethod: HmacMethod;
  readonly #version: string;
  readonly #now: () => Date;
  readonly #observer: FpsCallObserver | undefined;

  /** Throws TypeError for an unusable endpoint or missing credentials (configuration errors). */
  constructor(options: FpsClientOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new TypeError(`FPS endpoint must be http(s): ${options.endpoint}`);
    if (url.search || url.hash || url.username || url.password) {
      throw new TypeError('FPS endpoint must not carry a query, fragment or credentials');
    }
    if (!options.accessKeyId || !options.secretKey) throw new TypeError('FPS accessKeyId and secretKey are required');
    this.#url = url;
    this.endpoint = url.href;
    // URL.host keeps a non-default port and drops a default one, exactly as node:http sends the
    // Host header; the server signs what it receives, so both sides agree.
    this.#host = signingHost(url.host, url.protocol as 'http:' | 'https:');
    this.accessKeyId = options.accessKeyId;
    this.#secretKey = options.secretKey;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#httpMethod = options.httpMethod ?? 'POST';
    this.#signatureMethod = options.signatureMethod ?? 'HmacSHA256';
    this.#version = options.version ?? FPS_API_VERSION;
    this.#now = options.now ?? (() => new Date());
    this.#observer = options.observer;
  }

  /**
   * Sends one action. Resolves with the typed result (plus `requestId`); rejects only with FpsError:
   * - the FPS error from an error document (code, message, requestId, httpStatus);
   * - `Timeout` (retryable) when no complete answer arrived within timeoutMs — the request may or
   *   may not have been executed, so retry with the same CallerReference;
   * - `NetworkError` (retryable) when the connection failed or broke;
   * - `MalformedResponse` for an unreadable answer (retryable only with HTTP 5xx);
   * - `InvalidParams` / `AmountOutOfRange` (not retryable, httpStatus undefined) when the request
   *   cannot even be encoded; nothing was sent.
   */
  async call<A extends FpsAction>(action: A, request: FpsRequest<A>): Promise<FpsCallResult<A>> {
    const observer = this.#observer ?? processObserver;
    if (!observer) return this.#call(action, request);
    const end = observer.start(action);
    try {
      const result = await this.#call(action, request);
      end({ httpStatus: 200 });
      return result;
    } catch (e) {
      end(e instanceof FpsError ? { httpStatus: e.httpStatus, errorCode: e.code } : { errorCode: 'InternalError' });
      throw e;
    }
  }

  async #call<A extends FpsAction>(action: A, request: FpsRequest<A>): Promise<FpsCallResult<A>> {
    const params = this.signedParams(action, request);
    const body = toQueryString(params);
    const isGet = this.#httpMethod === 'GET';
    const target = isGet ? `${this.#url.href}?${body}` : this.#url.href;
    const signal = AbortSignal.timeout(this.#timeoutMs);

    let status: number;
    let text: string;
    try {
      ({ status, text } = await this.#send(target, isGet ? undefined : body, signal));
    } catch (e) {
      throw this.#transportError(action, e, signal);
    }
    try {
      return parseResponseXml(action, text, status);
    } catch (e) {
      if (e instanceof FpsError) throw e;
      throw new FpsError('MalformedResponse', `${action}: unreadable FPS response`, undefined, status);
    }
  }

  /**
   * One HTTP exchange on the process's keep-alive agent (node:http: about half the client CPU of
   * fetch per call, bench/RESULTS.md). A failure is never re-sent here, not even on a reused
   * connection: the server may have executed the request (the sandbox's "drop" fault does exactly
   * that), and the caller's retry with the same CallerReference is the one place that decides.
   */
  #send(target: string, body: string | undefined, signal: AbortSignal): Promise<{ status: number; text: string }> {
    const secure = this.#url.protocol === 'https:';
    const headers: http.OutgoingHttpHeaders = { accept: 'text/xml' };
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded; charset=utf-8';
      headers['content-length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const options: https.RequestOptions = {
        method: this.#httpMethod,
        headers,
        agent: secure ? HTTPS_AGENT : HTTP_AGENT,
        signal,
      };
      const req = (secure ? https : http).request(target, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.complete) resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          else
            reject(
              Object.assign(new Error('connection closed before the whole answer arrived'), { code: 'ECONNRESET' }),
            );
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The complete signed parameter set of a request (exposed for tests and diagnostics; contains no secret). */
  signedParams<A extends FpsAction>(action: A, request: FpsRequest<A>): Record<string, string> {
    try {
      const common = {
        Action: action,
        AWSAccessKeyId: this.accessKeyId,
        // Second precision, as boto sends it.
        Timestamp: this.#now()
          .toISOString()
          .replace(/\.\d{3}Z$/, 'Z'),
        Version: this.#version,
      };
      return signQueryParams(
        { ...encodeRequest(action, request), ...common },
        { method: this.#httpMethod, host: this.#host, path: this.#url.pathname },
        this.#secretKey,
        this.#signatureMethod,
      );
    } catch (e) {
      // Missing fields (TypeError), bad amounts (MoneyError), text that is not valid UTF-16 (URIError):
      // the request cannot be put on the wire at all.
      const code = e instanceof MoneyError && e.code === 'AmountOutOfRange' ? 'AmountOutOfRange' : 'InvalidParams';
      throw new FpsError(code, `${action}: ${e instanceof Error ? e.message : String(e)}`, undefined, undefined);
    }
  }

  #transportError(action: FpsAction, error: unknown, signal: AbortSignal): FpsError {
    if (signal.aborted) {
      return new FpsError(
        'Timeout',
        `${action}: no answer from ${this.#url.origin} within ${this.#timeoutMs} ms`,
        undefined,
        undefined,
      );
    }
    // Only the socket error's code and message are kept (they name host and port, never the
    // request's parameters).
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const code =
      typeof cause === 'object' && cause !== null && 'code' in cause
        ? String((cause as { code: unknown }).code)
        : undefined;
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new FpsError(
      'NetworkError',
      `${action}: ${code ? `${code} ` : ''}${detail} (${this.#url.origin})`,
      undefined,
      undefined,
    );
  }

  /** Keeps the secret out of console.log/util.inspect even in Node versions that show private fields. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `FpsClient { endpoint: '${this.endpoint}', accessKeyId: '${this.accessKeyId}' }`;
  }

  toJSON(): { endpoint: string; accessKeyId: string } {
    return { endpoint: this.endpoint, accessKeyId: this.accessKeyId };
  }
}
