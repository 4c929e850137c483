// Ids the API makes up: instrument ids and operation ids for requests without an Idempotency-Key.
// Short, URL-safe, lower-case base32, and never a ':' (CallerReferences split on it).
import { createHash, randomBytes } from 'node:crypto';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
function base32(bytes: Uint8Array, length: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

/** The same customer and Idempotency-Key always name the same instrument, so a retried create finds it. */
export function instrumentIdForKey(customerId: string, idempotencyKey: string): string {
  return `ins_${base32(createHash('sha256').update(`${customerId}\n${idempotencyKey}`).digest(), 20)}`;
}

/** `<prefix>_` + 20 random base32 characters (100 bits), e.g. `ins_k3m9q2x7b4t6w8z5c2d4`. */
export const newId = (prefix: string) => `${prefix}_${base32(randomBytes(13), 20)}`;
