import assert from 'node:assert/strict';
import vectors from '../vectors/rsa-sha1-callbacks.json';
import { CallbackVerifier, type CallbackVerifierOptions } from '../../fps/callback-verifier';

type VectorCase = {
  name: string;
  httpMethod: string;
  urlEndPoint: string;
  params: Record<string, string>;
  valid: boolean;
};
const cases = vectors.cases as unknown as VectorCase[];
const CERT_URL = 'https://fps.sandbox.amazonaws.com/certs/090909/PKICert.pem';
const valid = cases.find((c) => c.name === 'ipn-pay-success')!;

function setup(options: Partial<CallbackVerifierOptions> = {}) {
  const fetched: string[] = [];
  const verifier = new CallbackVerifier({
    certificateUrlAllowlist: ['https://fps.sandbox.amazonaws.com/certs/'],
    fetchCertificate: async (url) => {
      fetched.push(url);
      return vectors.certificatePem;
    },
    ...options,
  });
  return { verifier, fetched };
}

const withCertUrl = (certificateUrl: string) => ({ ...valid, params: { ...valid.params, certificateUrl } });

describe('fps/callback-verifier', () => {
  describe('vectors', () => {
    for (const v of cases) {
      it(`${v.name}: ${v.valid ? 'ok' : 'rejected'}`, async () => {
        const { verifier } = setup();
        const result = await verifier.verify(v);
        assert.equal(result.ok, v.valid, JSON.stringify(result));
      });
    }
    it('names the reason for a missing signature without fetching', async () => {
      const { verifier, fetched } = setup();
      const result = await verifier.verify(cases.find((c) => c.name === 'ipn-missing-signature')!);
      assert.deepEqual(result, { ok: false, reason: 'missing signature' });
      assert.equal(fetched.length, 0);
    });
  });

  describe('signature fields', () => {
    const reasons: Array<[string, Record<string, string | undefined>, RegExp]> = [
      ['no certificateUrl', { certificateUrl: undefined }, /missing certificateUrl/],
      ['signatureVersion 1', { signatureVersion: '1' }, /signatureVersion/],
      ['no signatureVersion', { signatureVersion: undefined }, /signatureVersion/],
      ['HmacSHA256 method', { signatureMethod: 'HmacSHA256' }, /signatureMethod/],
      ['empty signature', { signature: '' }, /missing signature/],
    ];
    for (const [name, change, reason] of reasons) {
      it(`rejects ${name}`, async () => {
        const { verifier, fetched } = setup();
        const params: Record<string, string> = { ...valid.params };
        for (const [k, v] of Object.entries(change)) {
          if (v === undefined) delete params[k];
          else params[k] = v;
        }
        const result = await verifier.verify({ ...valid, params });
        assert.equal(result.ok, false);
        assert.match((result as { reason: string }).reason, reason);
        assert.equal(fetched.length, 0);
      });
    }
  });

  describe('certificateUrl allow-list', () => {
    const bypasses = [
      'https://fps.sandbox.amazonaws.com.evil.com/certs/090909/PKICert.pem',
      'https://fps.sandbox.amazonaws.com@evil.com/certs/090909/PKICert.pem',
      'https://good@evil.com/certs/090909/PKICert.pem',
      'https://user:pw@fps.sandbox.amazonaws.com/certs/090909/PKICert.pem',
      'http://fps.sandbox.amazonaws.com/certs/090909/PKICert.pem',
      'https://fps.sandbox.amazonaws.com:8443/certs/090909/PKICert.pem',
      'https://evil.com/https://fps.sandbox.amazonaws.com/certs/PKICert.pem',
      'https://evil.com/?https://fps.sandbox.amazonaws.com/certs/PKICert.pem',
      'https://fps.sandbox.amazonaws.com/other/PKICert.pem',
      'https://fps.sandbox.amazonaws.com/certsevil/PKICert.pem',
      'https://fps.sandbox.amazonaws.com/certs/../evil/PKICert.pem',
      'https://fps.sandbox.amazonaws.com/certs/%2e%2e/evil/PKICert.pem',
      'https://fps.sandbox.amazonaws.com/certs/..%2fevil%2fPKICert.pem',
      'https://fps.sandbox.amazonaws.com/certs/..%5Cevil.pem',
      'https://fps.sandbox.amazonaws.com/certs/x.pem?redirect=https://evil.com/',
      'https://fps.sandbox.amazonaws.com/certs/x.pem#fragment',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'data:text/plain,-----BEGIN CERTIFICATE-----',
      '//fps.sandbox.amazonaws.com/certs/PKICert.pem',
      'not a url',
      ' https://fps.sandbox.amazonaws.com.evil.com/certs/',
    ];
    for (const certificateUrl of bypasses) {
      it(`refuses ${JSON.stringify(certificateUrl)} without fetching it`, async () => {
        const { verifier, fetched } = setup();
        const result = await verifier.verify(withCertUrl(certificateUrl));
        assert.equal(result.ok, false);
        assert.equal(fetched.length, 0);
      });
    }

    it('prefix without trailing slash matches whole path segments only', () => {
      const { verifier } = setup({ certificateUrlAllowlist: ['https://fps.sandbox.amazonaws.com/certs'] });
      assert.equal(verifier.allowedCertificateUrl(CERT_URL), CERT_URL);
      assert.equal(
        verifier.allowedCertificateUrl('https://fps.sandbox.amazonaws.com/certs'),
        'https://fps.sandbox.amazonaws.com/certs',
      );
      assert.equal(
        verifier.allowedCertificateUrl('https://fps.sandbox.amazonaws.com/certsevil/PKICert.pem'),
        undefined,
      );
    });

    it('normalises case and default port before comparing and fetches the normalised URL', async () => {
      const { verifier, fetched } = setup();
      assert.equal(
        verifier.allowedCertificateUrl('HTTPS://FPS.Sandbox.AmazonAWS.com:443/certs/090909/PKICert.pem'),
        CERT_URL,
      );
      await verifier.verify(valid);
      assert.deepEqual(fetched, [CERT_URL]);
    });

    it('an http allow-list entry (local sandbox) matches http with its port only', () => {
      const { verifier } = setup({ certificateUrlAllowlist: ['http://127.0.0.1:8701/certs/'] });
      assert.ok(verifier.allowedCertificateUrl('http://127.0.0.1:8701/certs/PKICert.pem'));
      assert.equal(verifier.allowedCertificateUrl('http://127.0.0.1:8702/certs/PKICert.pem'), undefined);
      assert.equal(verifier.allowedCertificateUrl('https://127.0.0.1:8701/certs/PKICert.pem'), undefined);
      assert.equal(verifier.allowedCertificateUrl('http://localhost:8701/certs/PKICert.pem'), undefined);
    });

    it('any of several entries admits', () => {
      const { verifier } = setup({
        certificateUrlAllowlist: ['https://a.example/certs/', 'https://fps.sandbox.amazonaws.com/certs/'],
      });
      assert.ok(verifier.allowedCertificateUrl(CERT_URL));
    });

    it('rejects configuration that is not a plain http(s) prefix', () => {
      assert.throws(
        () => new CallbackVerifier({ certificateUrlAllowlist: ['fps.sandbox.amazonaws.com/certs/'] }),
        TypeError,
      );
      assert.throws(
        () => new CallbackVerifier({ certificateUrlAllowlist: ['ftp://fps.sandbox.amazonaws.com/'] }),
        TypeError,
      );
      assert.throws(
        () => new CallbackVerifier({ certificateUrlAllowlist: ['https://u@fps.sandbox.amazonaws.com/'] }),
        TypeError,
      );
    });
  });

  describe('certificate cache', () => {
    it('fetches a certificate once for many callbacks', async () => {
      const { verifier, fetched } = setup();
      for (const v of cases.filter((c) => c.valid)) assert.deepEqual(await verifier.verify(v), { ok: true });
      assert.equal(fetched.length, 1);
    });

    it('shares one fetch between concurrent callbacks', async () => {
      const { verifier, fetched } = setup();
      const results = await Promise.all([verifier.verify(valid), verifier.verify(valid), verifier.verify(valid)]);
      assert.ok(results.every((r) => r.ok));
      assert.equal(fetched.length, 1);
    });

    it('fetches again after the TTL', async () => {
      let now = Date.parse('2030-01-01T00:00:00Z');
      const { verifier, fetched } = setup({ cacheTtlMs: 1000, now: () => now });
      await verifier.verify(valid);
      now += 999;
      await verifier.verify(valid);
      assert.equal(fetched.length, 1);
      now += 2;
      await verifier.verify(valid);
      assert.equal(fetched.length, 2);
    });

    it('does not cache fetch failures', async () => {
      let calls = 0;
      const verifier = new CallbackVerifier({
        certificateUrlAllowlist: ['https://fps.sandbox.amazonaws.com/certs/'],
        fetchCertificate: async () => {
          calls += 1;
          if (calls === 1) throw new Error('connect ECONNREFUSED');
          return vectors.certificatePem;
        },
      });
      const first = await verifier.verify(valid);
      assert.equal(first.ok, false);
      assert.match((first as { reason: string }).reason, /certificate unavailable: connect ECONNREFUSED/);
      assert.deepEqual(await verifier.verify(valid), { ok: true });
      assert.equal(calls, 2);
    });

    it('rejects and does not cache something that is not a certificate', async () => {
      const bodies = ['<html>not found</html>', vectors.certificatePem];
      const verifier = new CallbackVerifier({
        certificateUrlAllowlist: ['https://fps.sandbox.amazonaws.com/certs/'],
        fetchCertificate: async () => bodies.shift()!,
      });
      assert.equal((await verifier.verify(valid)).ok, false);
      assert.deepEqual(await verifier.verify(valid), { ok: true });
    });

    it('refuses an expired certificate', async () => {
      const { verifier } = setup({ now: () => Date.parse('2200-01-01T00:00:00Z') });
      const result = await verifier.verify(valid);
      assert.equal(result.ok, false);
      assert.match((result as { reason: string }).reason, /expired/);
    });

    it('a forged callback with a foreign certificateUrl leaves the cache alone', async () => {
      const { verifier, fetched } = setup();
      await verifier.verify(withCertUrl('https://evil.com/certs/090909/PKICert.pem'));
      assert.equal(fetched.length, 0);
      assert.deepEqual(await verifier.verify(valid), { ok: true });
      assert.deepEqual(fetched, [CERT_URL]);
    });
  });

  describe('never throws', () => {
    const bad: unknown[] = [
      { httpMethod: 'POST', urlEndPoint: 'not a url', params: valid.params },
      { httpMethod: 'POST', urlEndPoint: valid.urlEndPoint, params: null },
      { httpMethod: 'POST', urlEndPoint: valid.urlEndPoint, params: { ...valid.params, transactionId: 42 } },
      { httpMethod: undefined, urlEndPoint: valid.urlEndPoint, params: valid.params },
      { httpMethod: 'POST', urlEndPoint: valid.urlEndPoint, params: { ...valid.params, signature: '%%%' } },
      { httpMethod: 'POST', urlEndPoint: valid.urlEndPoint, params: { ...valid.params, certificateUrl: ['x'] } },
    ];
    bad.forEach((input, i) => {
      it(`bad input #${i} is { ok: false }`, async () => {
        const { verifier } = setup();
        const result = await verifier.verify(input as never);
        assert.equal(result.ok, false);
      });
    });

    it('a fetcher that throws synchronously or returns a non-string is { ok: false }', async () => {
      for (const fetchCertificate of [
        () => {
          throw new Error('boom');
        },
        async () => 42 as unknown as string,
      ]) {
        const verifier = new CallbackVerifier({
          certificateUrlAllowlist: ['https://fps.sandbox.amazonaws.com/certs/'],
          fetchCertificate,
        });
        assert.equal((await verifier.verify(valid)).ok, false);
      }
    });
  });
});
