// One request with bounded retries: 503, 504 and network errors are sent again, after jittered
// exponential backoff (or the answer's Retry-After), with the same Idempotency-Key, so a POST the
// API already carried out answers its original result and moves money once.
import { apiError, FpsConnectionError } from './errors';
import type { Problem } from './types';

export interface RetryOptions {
  /** Retries after the first attempt (default 3; 0 turns retrying off). */
  retries: number;
  /** First backoff (default 200 ms), doubled per retry and jittered ±25%. */
  initialDelayMs: number;
  /** Longest wait between two attempts, Retry-After included (default 5 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 3, initialDelayMs: 200, maxDelayMs: 5_000 };

const RETRY_STATUSES = new Set([503, 504]);

export interface HttpOptions {
  baseUrl: string;
  apiKey: string;
  retry: RetryOptions;
  /** Per-attempt timeout (default 35 s: longer than the API's own 30 s operation timeout). */
  timeoutMs: number;
  fetch: typeof fetch;
  /** Called before each retry, e.g. for logging. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string; idempotencyKey?: string }) => void;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  idempotencyKey?: string;
  accept?: string;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** Keys the API accepts: 1–64 of [A-Za-z0-9_.-], starting with a letter or digit. */
export function newIdempotencyKey(prefix = 'cli'): string {
  return `${prefix}-${crypto.randomUUID()}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function backoff(retry: RetryOptions, attempt: number, retryAfter: string | null): number {
  const seconds = retryAfter !== null && /^\d{1,6}$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
  const exponential = retry.initialDelayMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
  return Math.round(Math.min(retry.maxDelayMs, seconds ?? exponential));
}

export async function send(
  http: HttpOptions,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<RawAnswer> {
  const url = new URL(path.replace(/^\//, ''), http.baseUrl.endsWith('/') ? http.baseUrl : `${http.baseUrl}/`);
  for (const [name, value] of Object.entries(options.query ?? {}))
    if (value !== undefined) url.searchParams.set(name, String(value));
  const headers: Record<string, string> = {
    'x-api-key': http.apiKey,
    accept: options.accept ?? 'application/json',
  };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);

  for (let attempt = 1; ; attempt++) {
    let reason: string;
    let retryAfter: string | null = null;
    try {
      const response = await http.fetch(url, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(http.timeoutMs),
      });
      const text = await response.text();
      if (response.status < 400) return { status: response.status, headers: response.headers, text };
      if (!RETRY_STATUSES.has(response.status) || attempt > http.retry.retries)
        throw apiError(problemOf(response.status, text), response.headers.get('x-request-id') ?? undefined);
      reason = `HTTP ${response.status}`;
      retryAfter = response.headers.get('retry-after');
    } catch (err) {
      if (!isNetworkError(err)) throw err;
      if (attempt > http.retry.retries)
        throw new FpsConnectionError(`${method} ${url.pathname}: ${describe(err)}`, attempt, { cause: err });
      reason = describe(err);
    }
    const delayMs = backoff(http.retry, attempt, retryAfter);
    http.onRetry?.({ attempt, delayMs, reason, idempotencyKey: options.idempotencyKey });
    await sleep(delayMs);
  }
}

/** fetch rejects with a TypeError on connection failures and a TimeoutError/AbortError on its signal. */
function isNetworkError(err: unknown): boolean {
  return (
    err instanceof TypeError || (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
  );
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** The answer's problem+json, or a stand-in when something in between answered (a proxy's HTML page). */
function problemOf(status: number, text: string): Problem {
  try {
    const parsed = JSON.parse(text) as Partial<Problem>;
    if (typeof parsed.code === 'string' && typeof parsed.status === 'number') return parsed as Problem;
  } catch {
    // not JSON
  }
  return { type: 'about:blank', title: `HTTP ${status}`, status, code: `http_${status}`, detail: text.slice(0, 200) };
}
