import assert from 'node:assert/strict';
import vectors from '../vectors/signature-v2.json';
import { canonicalQuery, hmac, signQueryParams, signCbuiParams, stringToSign, type HmacMethod } from '../../fps/signature';

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
