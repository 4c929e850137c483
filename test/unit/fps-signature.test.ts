import assert from 'node:assert/strict';
import vectors from '../vectors/signature-v2.json';
import {
  canonicalQuery,
  hmac,
  rfc3986,
  signingHost,
  signQueryParams,
  signCbuiParams,
  stringToSign,
  type HmacMethod,
} from '../../fps/signature';

describe('fps/signature: Signature V2 against boto-computed vectors', () => {
  for (const v of vectors.cases) {
    const params = v.params as unknown as Record<string, string>;
    const isCbui = v.path.startsWith('/cobranded-ui');
    const sigName = isCbui ? 'signature' : 'Signature';
    const method = ((isCbui ? params.signatureMethod : params.SignatureMethod) ?? 'HmacSHA256') as HmacMethod;

    it(`${v.name}: canonical query, string to sign and signature match`, () => {
      assert.equal(canonicalQuery(params, [sigName]), v.canonicalQuery);
      const toSign = stringToSign(v.method, v.host, v.path, params, [sigName]);
      assert.equal(toSign, v.stringToSign);
      assert.equal(hmac(v.secret, toSign, method), v.signature);
    });

    it(`${v.name}: the signer produces the vector's signature`, () => {
      const signed = isCbui
        ? signCbuiParams(params, { host: v.host, path: v.path }, v.secret, method)
        : signQueryParams(params, { method: v.method as 'GET' | 'POST', host: v.host, path: v.path }, v.secret, method);
      assert.equal(signed[sigName], v.signature);
    });
  }
});

describe('fps/signature: RFC 3986 encoding and signing host', () => {
  const cases: Array<[string, string]> = [
    ['', ''],
    ['AZaz09-_.~', 'AZaz09-_.~'],
    [' ', '%20'],
    ['a b+c', 'a%20b%2Bc'],
    ['/', '%2F'],
    ['~', '~'],
    [":/?#[]@!$&'()*+,;=", '%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D'],
    ['%', '%25'],
    ['%20', '%2520'],
    ['"<>\\^`{|}', '%22%3C%3E%5C%5E%60%7B%7C%7D'],
    ['\n\t', '%0A%09'],
    ['ü', '%C3%BC'],
    ['€', '%E2%82%AC'],
    ['日本', '%E6%97%A5%E6%9C%AC'],
    ['😀', '%F0%9F%98%80'],
    ['USD 12.50', 'USD%2012.50'],
  ];
  for (const [raw, encoded] of cases) {
    it(`rfc3986(${JSON.stringify(raw)}) = ${JSON.stringify(encoded)}`, () => assert.equal(rfc3986(raw), encoded));
  }

  it('every printable ASCII character outside the unreserved set is %XX with upper-case hex', () => {
    for (let code = 0x20; code < 0x7f; code++) {
      const c = String.fromCharCode(code);
      const expected = /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
      assert.equal(rfc3986(c), expected, JSON.stringify(c));
    }
  });

  it('empty values stay in the canonical query as name=', () => {
    assert.equal(canonicalQuery({ b: '', a: 'x' }), 'a=x&b=');
  });

  it('signingHost: lower case, default port of the scheme dropped, others kept', () => {
    assert.equal(signingHost('FPS.Sandbox.AmazonAWS.com'), 'fps.sandbox.amazonaws.com');
    assert.equal(signingHost('fps.sandbox.amazonaws.com:443'), 'fps.sandbox.amazonaws.com');
    assert.equal(signingHost('fps.sandbox.amazonaws.com:443', 'https:'), 'fps.sandbox.amazonaws.com');
    assert.equal(signingHost('example.com:443', 'http:'), 'example.com:443');
    assert.equal(signingHost('example.com:80', 'http:'), 'example.com');
    assert.equal(signingHost('example.com:80', 'https:'), 'example.com:80');
    assert.equal(signingHost('127.0.0.1:8701', 'http:'), '127.0.0.1:8701');
    assert.equal(signingHost('example.com:4430'), 'example.com:4430');
    assert.equal(signingHost('[::1]:443'), '[::1]');
    assert.equal(signingHost('Localhost:8443'), 'localhost:8443');
  });
});
