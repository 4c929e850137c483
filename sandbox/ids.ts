// Identifiers shaped like FPS's: upper-case alphanumerics, 35 characters for transactions and 64
// for tokens and instruments, random so that nothing can be guessed from them.
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function randomId(length: number): string {
  let id = '';
  while (id.length < length) {
    for (const byte of randomBytes(length)) {
      // 252 = 7 * 36: rejecting the top 4 values keeps every character equally likely.
      if (byte < 252 && id.length < length) id += ALPHABET[byte % 36];
    }
  }
  return id;
}

export const newTransactionId = () => randomId(35);
export const newTokenId = () => randomId(64);
export const newInstrumentId = () => randomId(64);
/** Server-side id of a CBUI page waiting for the buyer's decision. */
export const newCbuiRequestId = () => randomId(32);
