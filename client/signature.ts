// The webhook signature, both sides: `Fps-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
// "<t>.<raw body>")>`. Depends on node:crypto only; the deliverer (webhooks/signature.ts) re-exports it.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Fps-Signature';
export const EVENT_ID_HEADER = 'Fps-Event-Id';
/** Receivers refuse signatures older (or newer) than this by default: 5 minutes. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type SignatureErrorCode = 'malformed_header' | 'no_v1_signature' | 'timestamp_outside_tolerance' | 'mismatch';

export class WebhookSignatureError extends Error {
  override readonly name = 'WebhookSignatureError';
  constructor(
    readonly code: SignatureErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function hmacHex(secret: string, timestamp: number, rawBody: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex');
}

/** The header value for `rawBody` signed at `timestamp` (unix seconds). */
export function sign(rawBody: string | Buffer, secret: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${hmacHex(secret, timestamp, rawBody)}`;
}

/**
 * Verifies `header` over the exact bytes received. Any of several `v1=` values may match (a
 * sender rotating secrets signs with both). Throws WebhookSignatureError; answers the timestamp.
 */
export function verify(
  rawBody: string | Buffer,
  header: string | undefined | null,
  secret: string,
  toleranceSeconds: number = DEFAULT_TOLERANCE_SECONDS,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): { timestamp: number } {
  if (!header) throw new WebhookSignatureError('malformed_header', `no ${SIGNATURE_HEADER} header`);
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new WebhookSignatureError('malformed_header', `${SIGNATURE_HEADER}: "${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (!/^\d{1,12}$/.test(value) || timestamp !== undefined)
        throw new WebhookSignatureError('malformed_header', `${SIGNATURE_HEADER}: bad or repeated t`);
      timestamp = Number(value);
    } else if (key === 'v1') signatures.push(value);
  }
  if (timestamp === undefined) throw new WebhookSignatureError('malformed_header', `${SIGNATURE_HEADER}: no t`);
  if (signatures.length === 0) throw new WebhookSignatureError('no_v1_signature', `${SIGNATURE_HEADER}: no v1`);
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds)
    throw new WebhookSignatureError(
      'timestamp_outside_tolerance',
      `signed at ${timestamp}, ${nowSeconds - timestamp} s from now (tolerance ${toleranceSeconds} s)`,
    );
  const expected = Buffer.from(hmacHex(secret, timestamp, rawBody), 'hex');
  const matches = signatures.some((given) => {
    if (!/^[0-9a-f]{64}$/i.test(given)) return false;
    return timingSafeEqual(Buffer.from(given, 'hex'), expected);
  });
  if (!matches) throw new WebhookSignatureError('mismatch', 'no v1 signature matches the body');
  return { timestamp };
}
