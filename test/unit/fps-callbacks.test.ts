import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import vectors from '../vectors/rsa-sha1-callbacks.json';
import { callbackStringToSign, signCallbackParams, verifyCallbackSignature } from '../../fps/callback-signature';

type VectorCase = {
  name: string;
  httpMethod: string;
  urlEndPoint: string;
  params: Record<string, string>;
  stringToSign?: string;
  valid: boolean;
};
const cases = vectors.cases as unknown as VectorCase[];

describe('fps/callback-signature: RSA-SHA1 callbacks against openssl-signed vectors', () => {
  for (const v of cases) {
    if (v.stringToSign !== undefined) {
      it(`${v.name}: string to sign matches the vector`, () => {
        assert.equal(callbackStringToSign(v.httpMethod, v.urlEndPoint, v.params), v.stringToSign);
      });
    }
    it(`${v.name}: ${v.valid ? 'verifies' : 'is rejected'}`, () => {
      const ok = verifyCallbackSignature(v.params, {
        httpMethod: v.httpMethod,
        urlEndPoint: v.urlEndPoint,
        certificatePem: vectors.certificatePem,
      });
      assert.equal(ok, v.valid);
    });
  }
});

describe('fps/callback-signature: sign/verify', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const target = { httpMethod: 'POST', urlEndPoint: 'http://127.0.0.1:8080/fps/ipn' };
  const params = {
    notificationType: 'TransactionStatus',
    transactionId: 'T1',
    transactionAmount: 'USD 12.50',
    statusMessage: 'ok ~ / ü',
  };
  const signed = signCallbackParams(params, {
    ...target,
    privateKeyPem,
    certificateUrl: 'http://127.0.0.1:8701/certs/PKICert.pem',
  });

  it('adds the signature fields', () => {
    assert.equal(signed.signatureVersion, '2');
    assert.equal(signed.signatureMethod, 'RSA-SHA1');
    assert.equal(signed.certificateUrl, 'http://127.0.0.1:8701/certs/PKICert.pem');
    assert.ok(signed.signature.length > 100);
  });
  it('round-trips, with the port part of the signed host', () => {
    assert.ok(verifyCallbackSignature(signed, { ...target, certificatePem: publicKeyPem }));
    assert.ok(
      !verifyCallbackSignature(signed, {
        httpMethod: 'POST',
        urlEndPoint: 'http://127.0.0.1:8081/fps/ipn',
        certificatePem: publicKeyPem,
      }),
    );
  });
  it('host case and a default port do not matter; method and path do', () => {
    const ok = (urlEndPoint: string, httpMethod = 'POST') =>
      verifyCallbackSignature(signed, { httpMethod, urlEndPoint, certificatePem: publicKeyPem });
    assert.ok(ok('http://127.0.0.1:8080/fps/ipn?ignored=1'));
    assert.ok(!ok('http://127.0.0.1:8080/fps/ipn', 'GET'));
    assert.ok(!ok('http://127.0.0.1:8080/fps/ipn/'));
    const s2 = signCallbackParams(params, {
      httpMethod: 'GET',
      urlEndPoint: 'https://Shop.Example.com:443/r',
      privateKeyPem,
      certificateUrl: 'x',
    });
    assert.ok(
      verifyCallbackSignature(s2, {
        httpMethod: 'get',
        urlEndPoint: 'https://shop.example.com/r',
        certificatePem: publicKeyPem,
      }),
    );
  });
  it('re-signing ignores an existing signature parameter', () => {
    const again = signCallbackParams(signed, { ...target, privateKeyPem, certificateUrl: signed.certificateUrl });
    assert.equal(again.signature, signed.signature);
  });
  it('rejects wrong version/method, garbage signature, bad certificate, bad URL without throwing', () => {
    const v = (p: Record<string, string>, certificatePem = publicKeyPem, urlEndPoint = target.urlEndPoint) =>
      verifyCallbackSignature(p, { httpMethod: 'POST', urlEndPoint, certificatePem });
    assert.ok(!v({ ...signed, signatureVersion: '1' }));
    assert.ok(!v({ ...signed, signatureMethod: 'HmacSHA256' }));
    assert.ok(!v({ ...signed, signature: '!!!not base64' }));
    assert.ok(!v({ ...signed, signature: '' }));
    assert.ok(!v(signed, 'not a pem'));
    assert.ok(!v(signed, publicKeyPem, 'not a url'));
    assert.ok(!v(signed, publicKeyPem, 'ftp://127.0.0.1:8080/fps/ipn'));
  });
});
