// webhooks/signature.ts against an HMAC computed here independently, and every way a header can be wrong.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { sign, verify, WebhookSignatureError, type SignatureErrorCode } from '../../webhooks/signature';

const secret = 'whsec_test_secret_for_unit_tests';
const body = '{"id":"evt_1","type":"purchase.approved","data":{"amount":"4.99"}}';
const t = 1_767_225_600; // 2026-01-01T00:00:00Z

function refuses(code: SignatureErrorCode, fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof WebhookSignatureError && err.code === code);
}

describe('webhook signature', () => {
  it('is t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>', () => {
    const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
    assert.equal(sign(body, secret, t), `t=${t},v1=${expected}`);
  });

  it('verifies what it signs, from a string or the raw bytes', () => {
    const header = sign(body, secret, t);
    assert.deepEqual(verify(body, header, secret, 300, t + 10), { timestamp: t });
    assert.deepEqual(verify(Buffer.from(body), header, secret, 300, t - 10), { timestamp: t });
  });

  it('refuses a tampered body, another secret, a tampered signature', () => {
    const header = sign(body, secret, t);
    refuses('mismatch', () => verify(body.replace('4.99', '0.01'), header, secret, 300, t));
    refuses('mismatch', () => verify(`${body} `, header, secret, 300, t));
    refuses('mismatch', () => verify(body, header, `${secret}x`, 300, t));
    const flipped = header.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    refuses('mismatch', () => verify(body, flipped, secret, 300, t));
    refuses('mismatch', () => verify(body, `${header.slice(0, -2)}`, secret, 300, t));
  });

  it('refuses a signature whose timestamp is outside the tolerance (a replay), either way', () => {
    const header = sign(body, secret, t);
    refuses('timestamp_outside_tolerance', () => verify(body, header, secret, 300, t + 301));
    refuses('timestamp_outside_tolerance', () => verify(body, header, secret, 300, t - 301));
    assert.ok(verify(body, header, secret, 300, t + 300));
  });

  it('a changed timestamp breaks the signature (it is signed too)', () => {
    const header = sign(body, secret, t).replace(`t=${t}`, `t=${t + 60}`);
    refuses('mismatch', () => verify(body, header, secret, 300, t + 60));
  });

  it('accepts any of several v1 values (secret rotation) and ignores unknown schemes', () => {
    const good = sign(body, secret, t).split(',')[1];
    const header = `t=${t},v0=abc,v1=${'0'.repeat(64)},${good}`;
    assert.ok(verify(body, header, secret, 300, t));
  });

  it('refuses malformed headers without throwing anything else', () => {
    refuses('malformed_header', () => verify(body, undefined, secret));
    refuses('malformed_header', () => verify(body, '', secret));
    refuses('malformed_header', () => verify(body, 'garbage', secret));
    refuses('malformed_header', () => verify(body, `v1=${'0'.repeat(64)}`, secret, 300, t));
    refuses('malformed_header', () => verify(body, `t=abc,v1=${'0'.repeat(64)}`, secret, 300, t));
    refuses('malformed_header', () => verify(body, `t=${t},t=${t},v1=${'0'.repeat(64)}`, secret, 300, t));
    refuses('no_v1_signature', () => verify(body, `t=${t}`, secret, 300, t));
    refuses('mismatch', () => verify(body, `t=${t},v1=zz`, secret, 300, t));
    refuses('mismatch', () => verify(body, `t=${t},v1=${'a'.repeat(63)}`, secret, 300, t));
  });
});
