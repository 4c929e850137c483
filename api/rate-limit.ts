// Rate limiting for the merchant API: a token bucket per API key (per client address for requests
// without one), refilled continuously. Over the limit the answer is 429 problem+json with
// Retry-After. Self-contained: mount it once in app.ts, before the body parser, so a flood costs
// no JSON parsing and never reaches Temporal.
import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { presentedApiKey } from './auth';
import { ProblemError, sendProblem } from './problem';

export interface RateLimitOptions {
  /** Sustained requests per second per key; 0 disables the limiter. */
  perSecond: number;
  /** Bucket size: requests a key may send at once after being idle. */
  burst: number;
  /** Path prefixes that are limited (default: the API-key routes and the storefront backend). */
  prefixes?: readonly string[];
  /** Buckets kept (least recently used ones are forgotten first). */
  maxBuckets?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The routes the limiter guards: the API-key routes and the storefront backend. */
export const RATE_LIMITED_PREFIXES: readonly string[] = [
  '/customers/',
  '/instruments/',
  '/store/api/',
  '/webhook-endpoints',
  '/events',
];

/** The bucket a request draws from: its API key's digest (never the key itself), else its address. */
function bucketKey(req: Parameters<RequestHandler>[0]): string {
  const key = presentedApiKey(req.headers as Parameters<typeof presentedApiKey>[0]);
  if (key !== undefined) return `key:${createHash('sha256').update(key, 'utf8').digest('base64url')}`;
  return `ip:${req.ip ?? req.socket.remoteAddress ?? 'unknown'}`;
}

export function rateLimit(options: RateLimitOptions): RequestHandler {
  const { perSecond, burst, prefixes = RATE_LIMITED_PREFIXES, maxBuckets = 10_000, now = Date.now } = options;
  if (perSecond <= 0) return (_req, _res, next) => next();
  const capacity = Math.max(1, burst);
  const buckets = new Map<string, Bucket>();

  return (req, res, next) => {
    if (!prefixes.some((prefix) => req.path.startsWith(prefix))) {
      next();
      return;
    }
    const id = bucketKey(req);
    const t = now();
    let bucket = buckets.get(id);
    if (bucket) {
      buckets.delete(id);
      bucket.tokens = Math.min(capacity, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
      bucket.at = t;
    } else {
      bucket = { tokens: capacity, at: t };
      if (buckets.size >= maxBuckets) buckets.delete(buckets.keys().next().value!);
    }
    // Re-inserted: the Map's order is least recently used first.
    buckets.set(id, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      next();
      return;
    }
    const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
    sendProblem(
      res,
      new ProblemError(
        429,
        'rate_limited',
        `more than ${perSecond} requests per second (bursts of ${capacity}) for this API key; retry after ${retryAfter} s`,
        {
          headers: { 'Retry-After': String(retryAfter) },
        },
      ),
    );
  };
}
