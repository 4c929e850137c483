// Verifies FPS return URLs and IPNs end to end: signature fields present, certificateUrl under an
// allow-listed prefix, certificate fetched (and cached) only from there, RSA-SHA1 signature valid.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { CALLBACK_SIGNATURE_METHOD, CALLBACK_SIGNATURE_VERSION, verifyCallbackSignature } from './callback-signature';

export type CertificateFetcher = (url: string) => Promise<string>;

export interface CallbackVerifierOptions {
  /**
   * URL prefixes certificates may come from, e.g. `https://fps.sandbox.amazonaws.com/certs/`.
   * Matching is by scheme, host and port exactly, then by whole path segments: `/certs` admits
   * `/certs/x.pem` but not `/certsevil.pem`; `/certs/` admits anything below `/certs/`.
   */
  certificateUrlAllowlist: readonly string[];
  /** Defaults to global fetch with a timeout, no redirects and a size limit. */
  fetchCertificate?: CertificateFetcher;
  /** How long a fetched certificate is reused. Default one hour. */
  cacheTtlMs?: number;
  /** Timeout of the default fetcher. Default 5 s. */
  fetchTimeoutMs?: number;
  /** Clock for cache expiry and certificate validity (tests). */
  now?: () => number;
}

export interface CallbackToVerify {
  httpMethod: string;
  /** The merchant endpoint FPS called (return URL or IPN URL), without the callback parameters. */
  urlEndPoint: string;
  params: Readonly<Record<string, string>>;
}

export type CallbackVerification = { ok: true } | { ok: false; reason: string };

interface AllowedPrefix {
  protocol: string;
  host: string;
  path: string;
}

interface CachedCertificate {
  pem: string;
  expiresAt: number;
}

const DEFAULT_TTL_MS = 60 * 60 * 1000;
const DEFAULT_FETCH_TIMEOUT_MS = 5000;
const MAX_CERTIFICATE_BYTES = 64 * 1024;
// Encoded separators and dots are not normalised by URL parsing but may be by the server that
// answers, so they could walk out of an allow-listed directory.
const ENCODED_PATH_TRICKS = /%2e|%2f|%5c/i;

export class CallbackVerifier {
  readonly #allowlist: readonly AllowedPrefix[];
  readonly #fetchCertificate: CertificateFetcher;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedCertificate>();
  // Concurrent callbacks naming one certificate share a single fetch.
  readonly #inFlight = new Map<string, Promise<string>>();

  /** Throws TypeError for an allow-list entry that is not an absolute http(s) URL (a configuration error). */
  constructor(options: CallbackVerifierOptions) {
    this.#allowlist = options.certificateUrlAllowlist.map(parseAllowedPrefix);
    this.#ttlMs = options.cacheTtlMs ?? DEFAULT_TTL_MS;
    this.#now = options.now ?? Date.now;
    this.#fetchCertificate =
      options.fetchCertificate ?? defaultCertificateFetcher(options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
  }

  /** Never throws: every problem becomes `{ ok: false, reason }`. */
  async verify(callback: CallbackToVerify): Promise<CallbackVerification> {
    try {
      return await this.#verify(callback);
    } catch (e) {
      return fail(`verification error: ${describe(e)}`);
    }
  }

  /** The normalised certificate URL if it is allow-listed, else undefined. Exposed for diagnostics and tests. */
  allowedCertificateUrl(certificateUrl: string): string | undefined {
    let url: URL;
    try {
      url = new URL(certificateUrl);
    } catch {
      return undefined;
    }
    if (url.username || url.password || url.search || url.hash) return undefined;
    if (ENCODED_PATH_TRICKS.test(url.pathname)) return undefined;
    const allowed = this.#allowlist.some(
      (prefix) => url.protocol === prefix.protocol && url.host === prefix.host && pathUnder(url.pathname, prefix.path),
    );
    return allowed ? url.href : undefined;
  }

  async #verify({ httpMethod, urlEndPoint, params }: CallbackToVerify): Promise<CallbackVerification> {
    if (typeof params !== 'object' || params === null) return fail('no parameters');
    const { signature, certificateUrl, signatureVersion, signatureMethod } = params;
    if (typeof signature !== 'string' || signature === '') return fail('missing signature');
    if (typeof certificateUrl !== 'string' || certificateUrl === '') return fail('missing certificateUrl');
    if (signatureVersion !== CALLBACK_SIGNATURE_VERSION)
      return fail(`unsupported signatureVersion ${JSON.stringify(signatureVersion)}`);
    if (signatureMethod !== CALLBACK_SIGNATURE_METHOD)
      return fail(`unsupported signatureMethod ${JSON.stringify(signatureMethod)}`);
    if (typeof httpMethod !== 'string' || !isHttpUrl(urlEndPoint)) return fail('invalid httpMethod or urlEndPoint');
    for (const value of Object.values(params)) {
      if (typeof value !== 'string') return fail('parameter values must be strings');
    }

    const url = this.allowedCertificateUrl(certificateUrl);
    if (url === undefined) return fail('certificateUrl is not allow-listed');

    let certificatePem: string;
    try {
      certificatePem = await this.#certificate(url);
    } catch (e) {
      return fail(`certificate unavailable: ${describe(e)}`);
    }
    if (!verifyCallbackSignature(params, { httpMethod, urlEndPoint, certificatePem }))
      return fail('signature does not verify');
    return { ok: true };
  }

  async #certificate(url: string): Promise<string> {
    const cached = this.#cache.get(url);
    if (cached && cached.expiresAt > this.#now()) return cached.pem;
    const pending = this.#inFlight.get(url);
    if (pending) return pending;
    const fetching = this.#fetchCertificate(url)
      .then((pem) => {
        checkCertificate(pem, this.#now());
        // Only successfully fetched, readable certificates are cached; failures are retried next time.
        this.#cache.set(url, { pem, expiresAt: this.#now() + this.#ttlMs });
        return pem;
      })
      .finally(() => this.#inFlight.delete(url));
    this.#inFlight.set(url, fetching);
    return fetching;
  }
}

function parseAllowedPrefix(entry: string): AllowedPrefix {
  const url = new URL(entry);
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new TypeError(`certificate allow-list entry must be http(s): ${entry}`);
  if (url.username || url.password || url.search || url.hash)
    throw new TypeError(`certificate allow-list entry must be a plain URL prefix: ${entry}`);
  return { protocol: url.protocol, host: url.host, path: url.pathname };
}

/** Whole-segment prefix: "/certs" and "/certs/" both admit "/certs/a.pem"; neither admits "/certsx". */
function pathUnder(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix.endsWith('/')) return path.startsWith(prefix);
  return path === prefix || path.startsWith(`${prefix}/`);
}

function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** Rejects anything that is not a usable public key or certificate, and expired certificates. */
function checkCertificate(pem: string, now: number): void {
  if (typeof pem !== 'string') throw new Error('certificate is not text');
  createPublicKey(pem); // throws for anything that is not a PEM key or certificate
  if (pem.includes('BEGIN CERTIFICATE')) {
    // validFrom is not checked: a freshly generated sandbox certificate and a slightly slow clock
    // must not break callbacks. An expired certificate is refused.
    const validTo = Date.parse(new X509Certificate(pem).validTo);
    if (Number.isFinite(validTo) && validTo < now) throw new Error('certificate expired');
  }
}

function defaultCertificateFetcher(timeoutMs: number): CertificateFetcher {
  return async (url) => {
    // redirect: 'error' — a redirect could lead off the allow-listed host.
    const response = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > MAX_CERTIFICATE_BYTES) throw new Error('certificate too large');
    const text = await response.text();
    if (text.length > MAX_CERTIFICATE_BYTES) throw new Error('certificate too large');
    return text;
  };
}

const fail = (reason: string): CallbackVerification => ({ ok: false, reason });
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));
