// Merchant API keys: `X-Api-Key: <key>` or `Authorization: Bearer <key>`. Keys are compared as
// SHA-256 digests with timingSafeEqual (equal lengths, so no length leak), against every
// configured key without an early exit.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ProblemError } from './problem';

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** The key a request presents, or undefined. */
export function presentedApiKey(headers: {
  'x-api-key'?: string | string[];
  authorization?: string;
}): string | undefined {
  const header = headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

export function apiKeyMatcher(keys: readonly string[]): (presented: string) => boolean {
  if (keys.length === 0) throw new Error('API_KEYS is empty: the merchant API would accept nobody');
  const digests = keys.map(digest);
  return (presented) => {
    const candidate = digest(presented);
    let match = false;
    for (const known of digests) match = timingSafeEqual(candidate, known) || match;
    return match;
  };
}

const challenge = { 'WWW-Authenticate': 'Bearer realm="merchant-api"' };

export function requireApiKey(keys: readonly string[]): RequestHandler {
  const matches = apiKeyMatcher(keys);
  return (req, _res, next) => {
    const presented = presentedApiKey(req.headers as Parameters<typeof presentedApiKey>[0]);
    if (presented === undefined) {
      throw new ProblemError(401, 'missing_api_key', 'send the API key in X-Api-Key or Authorization: Bearer', {
        headers: challenge,
      });
    }
    if (!matches(presented))
      throw new ProblemError(401, 'invalid_api_key', 'the API key is not valid', { headers: challenge });
    next();
  };
}
