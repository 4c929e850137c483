// The sandbox's Query API front door against a real process: Signature V2 (HmacSHA256/HmacSHA1,
// GET/POST, Host as received, with port), the time window, versions, actions and the error XML.
import assert from 'node:assert/strict';
import http from 'node:http';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { signQueryParams, toQueryString, type HmacMethod } from '../../fps/signature';
import { parseErrorXml, parseResponseXml } from '../../fps/xml';
import { expectFpsError, fundedPrepaid, ref, startSandbox, usd, type TestSandbox } from './support';

interface RawAnswer {
  status: number;
  body: string;
}

/** One request with full control over method, Host header and parameters. */
function rawRequest(
  url: string,
  method: 'GET' | 'POST',
  params: Record<string, string>,
  hostHeader?: string,
  body?: string,
): Promise<RawAnswer> {
  const target = new URL(url);
  const query = toQueryString(params);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        method,
        path: method === 'GET' ? `/?${query}` : '/',
        headers: {
          ...(hostHeader ? { host: hostHeader } : {}),
          ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    if (method === 'POST') req.write(body ?? query);
    req.end();
  });
}

describe('sandbox Query API: authentication and protocol (real process)', function () {
  this.timeout(30_000);
  let sb: TestSandbox;
  let host: string;
  let tokenId: string;

  before(async () => {
    sb = await startSandbox({ name: 'query-api' });
    host = new URL(sb.url).host;
    tokenId = (await fundedPrepaid(sb, usd('100.00'))).senderTokenId;
  });
  after(async () => sb?.stop());

  const pay = (overrides: Record<string, string> = {}): Record<string, string> => ({
    Action: 'Pay',
    AWSAccessKeyId: DEV_ACCESS_KEY_ID,
    Timestamp: new Date().toISOString(),
    Version: '2008-09-17',
    SenderTokenId: tokenId,
    'TransactionAmount.Value': '1.00',
    'TransactionAmount.CurrencyCode': 'USD',
    CallerReference: ref('query-api'),
    ...overrides,
  });
  const sign = (
    params: Record<string, string>,
    options: { method?: 'GET' | 'POST'; host?: string; secret?: string; hmac?: HmacMethod } = {},
  ) =>
    signQueryParams(
      params,
      { method: options.method ?? 'GET', host: options.host ?? host, path: '/' },
      options.secret ?? DEV_SECRET_KEY,
      options.hmac,
    );
  const errorOf = (answer: RawAnswer) => parseErrorXml(answer.body, answer.status);

  it('accepts HmacSHA256 and HmacSHA1, over GET and POST', async () => {
    for (const method of ['GET', 'POST'] as const) {
      for (const hmac of ['HmacSHA256', 'HmacSHA1'] as const) {
        const answer = await rawRequest(sb.url, method, sign(pay(), { method, hmac }));
        assert.equal(answer.status, 200, `${method} ${hmac}: ${answer.body}`);
        assert.equal(parseResponseXml('Pay', answer.body).transactionStatus, 'Success');
      }
    }
    // And through the project's client, both methods.
    for (const httpMethod of ['GET', 'POST'] as const) {
      const client = sb.client({ httpMethod, signatureMethod: 'HmacSHA1' });
      assert.equal(
        (
          await client.call('Pay', {
            senderTokenId: tokenId,
            transactionAmount: usd('1.00'),
            callerReference: ref('client'),
          })
        ).transactionStatus,
        'Success',
      );
    }
  });

  it('answers in the namespace of the requested Version, with a RequestId per response', async () => {
    const old = await rawRequest(sb.url, 'GET', sign(pay({ Version: '2008-09-17' })));
    const boto = await rawRequest(sb.url, 'GET', sign(pay({ Version: '2010-08-28' })));
    assert.match(old.body, /<PayResponse xmlns="http:\/\/fps\.amazonaws\.com\/doc\/2008-09-17\/">/);
    assert.match(boto.body, /<PayResponse xmlns="http:\/\/fps\.amazonaws\.com\/doc\/2010-08-28\/">/);
    const ids = [old, boto].map((a) => parseResponseXml('Pay', a.body).requestId);
    assert.match(ids[0]!, /^[0-9a-f-]{36}$/);
    assert.notEqual(ids[0], ids[1]);
  });

  it('builds the string to sign from the Host header as received (with its port, or another name)', async () => {
    // fetch/http send "127.0.0.1:<port>"; a signature over the bare host does not match it.
    const withoutPort = await rawRequest(sb.url, 'GET', sign(pay(), { host: '127.0.0.1' }));
    assert.equal(errorOf(withoutPort).code, 'SignatureDoesNotMatch');
    // A proxy-style name in the Host header: sign for that name and it verifies.
    const named = await rawRequest(
      sb.url,
      'POST',
      sign(pay(), { method: 'POST', host: 'fps.sandbox.example.com:8443' }),
      'FPS.Sandbox.Example.com:8443',
    );
    assert.equal(named.status, 200, named.body);
    // Default ports are equivalent to none.
    const defaultPort = await rawRequest(
      sb.url,
      'GET',
      sign(pay(), { host: 'fps.sandbox.amazonaws.com' }),
      'fps.sandbox.amazonaws.com:443',
    );
    assert.equal(defaultPort.status, 200, defaultPort.body);
  });

  it('rejects a tampered parameter, a wrong secret, a missing signature or a GET signature on POST', async () => {
    const signed = sign(pay());
    const tampered = await rawRequest(sb.url, 'GET', { ...signed, 'TransactionAmount.Value': '2.00' });
    assert.equal(tampered.status, 403);
    const error = errorOf(tampered);
    assert.equal(error.code, 'SignatureDoesNotMatch');
    assert.match(error.message, /String to sign/);
    assert.match(error.requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(
      errorOf(await rawRequest(sb.url, 'GET', sign(pay(), { secret: 'not-the-secret' }))).code,
      'SignatureDoesNotMatch',
    );
    const { Signature: _dropped, ...unsigned } = signed;
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', unsigned)).code, 'SignatureDoesNotMatch');
    assert.equal(errorOf(await rawRequest(sb.url, 'POST', signed)).code, 'SignatureDoesNotMatch');
    assert.equal(
      errorOf(await rawRequest(sb.url, 'GET', sign(pay({ SignatureVersion: '1' })))).code,
      'SignatureDoesNotMatch',
    );
  });

  it('rejects an unknown access key id and a missing one', async () => {
    const unknown = await rawRequest(sb.url, 'GET', sign(pay({ AWSAccessKeyId: 'AKIANOBODY0000000000' })));
    assert.equal(unknown.status, 403);
    assert.equal(errorOf(unknown).code, 'InvalidClientTokenId');
    const { AWSAccessKeyId: _k, ...anonymous } = pay();
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', sign(anonymous))).code, 'AuthFailure');
    await expectFpsError(
      sb.client({ accessKeyId: 'AKIANOBODY0000000000' }).call('GetOutstandingDebtBalance', {}),
      'InvalidClientTokenId',
    );
  });

  it('enforces the 15-minute Timestamp window and Expires', async () => {
    const at = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', sign(pay({ Timestamp: at(-16) })))).code, 'RequestExpired');
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', sign(pay({ Timestamp: at(16) })))).code, 'RequestExpired');
    assert.equal((await rawRequest(sb.url, 'GET', sign(pay({ Timestamp: at(-14) })))).status, 200);
    const { Timestamp: _t, ...untimed } = pay();
    assert.equal(
      errorOf(await rawRequest(sb.url, 'GET', sign({ ...untimed, Expires: at(-1) }))).code,
      'RequestExpired',
    );
    assert.equal((await rawRequest(sb.url, 'GET', sign({ ...untimed, Expires: at(5) }))).status, 200);
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', sign(untimed))).code, 'InvalidParams');
    // Expired credentials are checked before anything else happens.
    const expired = await rawRequest(sb.url, 'GET', sign(pay({ Timestamp: at(-60) })));
    assert.equal(expired.status, 400);
  });

  it('rejects unknown actions, unsupported versions, missing and repeated parameters', async () => {
    const invalidAction = await rawRequest(sb.url, 'GET', sign(pay({ Action: 'InstallPaymentInstruction' })));
    assert.equal(invalidAction.status, 400);
    assert.equal(errorOf(invalidAction).code, 'InvalidAction');
    assert.equal(errorOf(await rawRequest(sb.url, 'GET', sign(pay({ Version: '2009-01-09' })))).code, 'InvalidParams');
    const { CallerReference: _c, ...noReference } = pay();
    const missing = errorOf(await rawRequest(sb.url, 'GET', sign(noReference)));
    assert.equal(missing.code, 'InvalidParams');
    assert.match(missing.message, /CallerReference/);
    const signed = sign(pay());
    const repeated = await rawRequest(
      sb.url,
      'POST',
      signed,
      undefined,
      `${toQueryString(signed)}&CallerReference=again`,
    );
    assert.equal(errorOf(repeated).code, 'InvalidParams');
    assert.equal(
      errorOf(await rawRequest(sb.url, 'GET', sign(pay({ 'TransactionAmount.Value': '1.001' })))).code,
      'InvalidParams',
    );
    assert.equal(
      errorOf(await rawRequest(sb.url, 'GET', sign(pay({ 'TransactionAmount.Value': '0.00' })))).code,
      'AmountOutOfRange',
    );
  });

  it('ignores parameters it does not model (boto sends ChargeFeeTo and friends)', async () => {
    const answer = await rawRequest(
      sb.url,
      'POST',
      sign(pay({ ChargeFeeTo: 'Recipient', CallerDescription: 'Café ✓ 日本 a+b/c' }), { method: 'POST' }),
    );
    assert.equal(answer.status, 200, answer.body);
  });

  it('serves health, the certificate and a landing page', async () => {
    assert.equal((await fetch(`${sb.url}/healthz`)).status, 200);
    const cert = await fetch(`${sb.url}/certs/PKICert.pem`);
    assert.equal(cert.headers.get('content-type'), 'application/x-pem-file');
    assert.match(await cert.text(), /^-----BEGIN CERTIFICATE-----/);
    assert.equal((await fetch(`${sb.url}/`)).status, 200);
    assert.equal((await fetch(`${sb.url}/nothing-here`)).status, 404);
  });
});
