// Amazon Signature Version 2: RFC 3986 encoding, byte-ordered canonical query, HMAC signing.
// Shared by the FPS client (signs) and the sandbox (verifies) so both speak one wire format;
// test/vectors holds independently computed cases that keep both honest.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type HmacMethod = 'HmacSHA256' | 'HmacSHA1';
export type Params = Readonly<Record<string, string>>;

/** RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ stay as they are. */
export function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** name=value pairs, RFC 3986 encoded, sorted by name in byte order, joined with '&'. */
export function canonicalQuery(params: Params, excluded: readonly string[] = []): string {
  return Object.keys(params)
    .filter((name) => !excluded.includes(name))
    .map((name) => [Buffer.from(name, 'utf8'), name] as const)
    .sort(([a], [b]) => Buffer.compare(a, b))
    .map(([, name]) => `${rfc3986(name)}=${rfc3986(params[name])}`)
    .join('&');
}

/** host[:port] as it goes into the string to sign: lower case, default ports dropped. */
export function signingHost(host: string, protocol: 'http:' | 'https:' = 'https:'): string {
  const lower = host.toLowerCase();
  const defaultPort = protocol === 'https:' ? ':443' : ':80';
  return lower.endsWith(defaultPort) ? lower.slice(0, -defaultPort.length) : lower;
}

export function stringToSign(
  method: string,
  host: string,
  path: string,
  params: Params,
  excluded: readonly string[],
): string {
  return [method.toUpperCase(), host.toLowerCase(), path || '/', canonicalQuery(params, excluded)].join('\n');
}

export function hmac(secret: string, data: string, method: HmacMethod): string {
  const algorithm = method === 'HmacSHA1' ? 'sha1' : 'sha256';
  return createHmac(algorithm, secret).update(data, 'utf8').digest('base64');
}

export function isHmacMethod(value: unknown): value is HmacMethod {
  return value === 'HmacSHA256' || value === 'HmacSHA1';
}

/** Constant-time comparison of two base64 signatures (or any two strings). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface SignedRequestTarget {
  method: 'GET' | 'POST';
  /** host[:port] exactly as the request's Host header will carry it. */
  host: string;
  path: string;
}

/**
 * Signs Query API parameters: adds SignatureVersion/SignatureMethod if absent and returns the
 * parameters with `Signature` set.
 */
export function signQueryParams(
  params: Params,
  target: SignedRequestTarget,
  secret: string,
  method: HmacMethod = 'HmacSHA256',
): Record<string, string> {
  const withMeta: Record<string, string> = { SignatureVersion: '2', SignatureMethod: method, ...params };
  const toSign = stringToSign(target.method, target.host, target.path, withMeta, ['Signature']);
  return { ...withMeta, Signature: hmac(secret, toSign, withMeta.SignatureMethod as HmacMethod) };
}

/** Verifies a Query API request's `Signature` with the secret of its AWSAccessKeyId. */
export function verifyQuerySignature(params: Params, target: SignedRequestTarget, secret: string): boolean {
  const method = params.SignatureMethod;
  if (params.SignatureVersion !== '2' || !isHmacMethod(method) || !params.Signature) return false;
  const expected = hmac(secret, stringToSign(target.method, target.host, target.path, params, ['Signature']), method);
  return safeEqual(expected, params.Signature);
}

/** Signs CBUI parameters: lower-case signatureVersion/signatureMethod/signature. */
export function signCbuiParams(
  params: Params,
  target: Omit<SignedRequestTarget, 'method'>,
  secret: string,
  method: HmacMethod = 'HmacSHA256',
): Record<string, string> {
  const withMeta: Record<string, string> = { signatureVersion: '2', signatureMethod: method, ...params };
  const toSign = stringToSign('GET', target.host, target.path, withMeta, ['signature']);
  return { ...withMeta, signature: hmac(secret, toSign, withMeta.signatureMethod as HmacMethod) };
}

export function verifyCbuiSignature(
  params: Params,
  target: Omit<SignedRequestTarget, 'method'>,
  secret: string,
): boolean {
  const method = params.signatureMethod;
  if (params.signatureVersion !== '2' || !isHmacMethod(method) || !params.signature) return false;
  const expected = hmac(secret, stringToSign('GET', target.host, target.path, params, ['signature']), method);
  return safeEqual(expected, params.signature);
}

/** Query string in canonical (signing) order, for building URLs and POST bodies. */
export function toQueryString(params: Params): string {
  return canonicalQuery(params);
}
