// An FPS client written without fps/: its own RFC 3986 encoder and byte-order sort, its own string
// to sign, HMAC by `openssl dgst -hmac | base64`, RSA-SHA1 return-URL checks by `openssl dgst
// -verify`, and regex-read XML. If fps/ had a bug that the sandbox shares, this client and the
// boto-computed vectors would disagree with the sandbox here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import vectors from '../vectors/signature-v2.json';
import { ref, startSandbox, type TestSandbox } from './support';

const VECTOR_KEY_ID = 'AKIAVECTORKEY0000000';
const VECTOR_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

// ---------------------------------------------------------------- the independent client

/** Percent-encodes every UTF-8 byte except A-Z a-z 0-9 - _ . ~ (upper-case hex). */
function pct(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const unreserved =
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      (byte >= 0x30 && byte <= 0x39) ||
      [0x2d, 0x5f, 0x2e, 0x7e].includes(byte);
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** name=value pairs sorted by the bytes of the name. */
function canonical(params: Record<string, string>): string {
  return Object.keys(params)
    .sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
    .map((name) => `${pct(name)}=${pct(params[name])}`)
    .join('&');
}

function opensslHmac(algorithm: 'sha256' | 'sha1', secret: string, data: string): string {
  return execFileSync('sh', ['-c', `openssl dgst -${algorithm} -hmac "$HMAC_SECRET" -binary | base64 | tr -d '\\n'`], {
    input: data,
    env: { ...process.env, HMAC_SECRET: secret },
  }).toString();
}

/** RSA-SHA1 check of a callback with openssl and the PEM certificate. */
function opensslVerify(certificatePem: string, data: string, signatureBase64: string): boolean {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fps-independent-'));
  try {
    writeFileSync(path.join(dir, 'cert.pem'), certificatePem);
    writeFileSync(path.join(dir, 'data'), data);
    writeFileSync(path.join(dir, 'sig'), Buffer.from(signatureBase64, 'base64'));
    const pub = execFileSync('openssl', ['x509', '-in', path.join(dir, 'cert.pem'), '-pubkey', '-noout']);
    writeFileSync(path.join(dir, 'pub.pem'), pub);
    execFileSync(
      'openssl',
      [
        'dgst',
        '-sha1',
        '-verify',
        path.join(dir, 'pub.pem'),
        '-signature',
        path.join(dir, 'sig'),
        path.join(dir, 'data'),
      ],
      { stdio: 'pipe' },
    );
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Answer {
  status: number;
  body: string;
  /** Leaf elements of the XML, by name. */
  fields: Record<string, string>;
}

function send(url: string, method: 'GET' | 'POST', query: string, hostHeader?: string): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        method,
        path: method === 'GET' ? `/?${query}` : '/',
        headers: {
          ...(hostHeader ? { host: hostHeader } : {}),
          ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          const fields: Record<string, string> = {};
          for (const [, name, value] of body.matchAll(/<(\w+)>([^<]*)<\/\1>/g)) fields[name] = value;
          resolve({ status: res.statusCode ?? 0, body, fields });
        });
      },
    );
    req.on('error', reject);
    if (method === 'POST') req.write(query);
    req.end();
  });
}

/** Signs and sends one Query API request, all by hand. */
function call(
  sb: TestSandbox,
  action: string,
  params: Record<string, string>,
  options: { method?: 'GET' | 'POST'; hmac?: 'HmacSHA256' | 'HmacSHA1'; tamper?: boolean } = {},
): Promise<Answer> {
  const method = options.method ?? 'POST';
  const hmac = options.hmac ?? 'HmacSHA256';
  const all: Record<string, string> = {
    Action: action,
    AWSAccessKeyId: DEV_ACCESS_KEY_ID,
    SignatureVersion: '2',
    SignatureMethod: hmac,
    Timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    Version: '2008-09-17',
    ...params,
  };
  const host = new URL(sb.url).host;
  const stringToSign = `${method}\n${host}\n/\n${canonical(all)}`;
  const signature = opensslHmac(hmac === 'HmacSHA1' ? 'sha1' : 'sha256', DEV_SECRET_KEY, stringToSign);
  if (options.tamper) all.CallerReference = `${all.CallerReference}-tampered`;
  return send(sb.url, method, `${canonical(all)}&Signature=${pct(signature)}`);
}

/** A CBUI start URL signed by hand for the sandbox's own host. */
function cbuiStartUrl(sb: TestSandbox, params: Record<string, string>): string {
  const all = {
    callerKey: DEV_ACCESS_KEY_ID,
    signatureMethod: 'HmacSHA256',
    signatureVersion: '2',
    version: '2009-01-09',
    ...params,
  };
  const host = new URL(sb.url).host;
  const signature = opensslHmac(
    'sha256',
    DEV_SECRET_KEY,
    `GET\n${host}\n/cobranded-ui/actions/start\n${canonical(all)}`,
  );
  return `${sb.url}/cobranded-ui/actions/start?${canonical(all)}&signature=${pct(signature)}`;
}

async function approve(startUrl: string): Promise<URL> {
  const response = await fetch(startUrl, { headers: { 'X-Sandbox-Decision': 'approve' }, redirect: 'manual' });
  assert.equal(response.status, 302, await response.text());
  return new URL(response.headers.get('location')!);
}

/** The return URL's RSA-SHA1 signature, checked by openssl over a hand-built string to sign. */
function returnUrlVerifies(location: URL, certificatePem: string): boolean {
  const params = Object.fromEntries(location.searchParams);
  const { signature, ...signed } = params;
  const stringToSign = `GET\n${location.host}\n${location.pathname}\n${canonical(signed)}`;
  return opensslVerify(certificatePem, stringToSign, signature);
}

// ---------------------------------------------------------------- the tests

describe('sandbox vs an independent FPS client and the boto vectors (real process)', function () {
  this.timeout(60_000);
  let sb: TestSandbox;
  let certificatePem: string;

  before(async () => {
    sb = await startSandbox({
      name: 'independent',
      env: { SANDBOX_ACCESS_KEYS: `${DEV_ACCESS_KEY_ID}:${DEV_SECRET_KEY},${VECTOR_KEY_ID}:${VECTOR_SECRET}` },
    });
    certificatePem = await (await fetch(`${sb.url}/certs/PKICert.pem`)).text();
  });
  after(async () => sb?.stop());

  const queryVectors = vectors.cases.filter((v) => v.path === '/');
  const cbuiVectors = vectors.cases.filter((v) => v.path !== '/');

  it('the independent signer reproduces every boto vector (so it is a fair judge)', () => {
    for (const v of vectors.cases) {
      const params = v.params as unknown as Record<string, string>;
      const { signature: _s, Signature: _S, ...unsigned } = params;
      assert.equal(canonical(unsigned), v.canonicalQuery, v.name);
      const stringToSign = `${v.method}\n${v.host}\n${v.path}\n${canonical(unsigned)}`;
      assert.equal(stringToSign, v.stringToSign, v.name);
      const method = (params.SignatureMethod ?? params.signatureMethod) === 'HmacSHA1' ? 'sha1' : 'sha256';
      assert.equal(opensslHmac(method, v.secret, stringToSign), v.signature, v.name);
    }
  });

  it('boto-signed Query API vectors, sent with their own Host header, pass the signature check', async () => {
    for (const v of queryVectors) {
      const params = v.params as unknown as Record<string, string>;
      const query = `${v.canonicalQuery}&Signature=${pct(v.signature)}`;
      const answer = await send(sb.url, v.method as 'GET' | 'POST', query, v.host);
      // The vectors carry a fixed Timestamp: once it is more than 15 minutes away, the signature
      // is accepted and the request then refused as expired; never SignatureDoesNotMatch.
      const stale = Math.abs(Date.now() - Date.parse(params.Timestamp)) > 15 * 60_000;
      if (stale) assert.equal(answer.fields.Code, 'RequestExpired', `${v.name}: ${answer.body}`);
      else assert.notEqual(answer.fields.Code, 'SignatureDoesNotMatch', `${v.name}: ${answer.body}`);

      const tampered = query
        .replace('TransactionAmount.Value=12.50', 'TransactionAmount.Value=12.51')
        .replace('SettlementAmount.Value=40.00', 'SettlementAmount.Value=40.01');
      assert.notEqual(tampered, query);
      assert.equal(
        (await send(sb.url, v.method as 'GET' | 'POST', tampered, v.host)).fields.Code,
        'SignatureDoesNotMatch',
        v.name,
      );
      // The same request under another Host no longer matches what was signed.
      assert.equal(
        (await send(sb.url, v.method as 'GET' | 'POST', query, 'other.example.com')).fields.Code,
        'SignatureDoesNotMatch',
        v.name,
      );
    }
  });

  it('boto-signed CBUI vectors are approved, and the return URL verifies with openssl', async () => {
    for (const v of cbuiVectors) {
      const location = await approve(`${sb.url}${v.path}?${v.canonicalQuery}&signature=${pct(v.signature)}`);
      assert.equal(`${location.origin}${location.pathname}`, 'https://shop.example.com/fps/return', v.name);
      assert.equal(
        location.searchParams.get('status'),
        'SC',
        `${v.name}: ${location.searchParams.get('errorMessage')}`,
      );
      assert.equal(location.searchParams.get('instrument'), 'inst-42', 'the merchant’s own query is kept');
      assert.ok(returnUrlVerifies(location, certificatePem), `${v.name}: RSA-SHA1 signature`);
      location.searchParams.set('status', 'SA');
      assert.ok(!returnUrlVerifies(location, certificatePem), `${v.name}: tampered return URL`);
    }
  });

  it('a hand-signed merchant session: SetupPrepaid, FundPrepaid (POST), Pay (GET, HmacSHA1), replay, balance', async () => {
    const sender = ref('independent');
    const location = await approve(
      cbuiStartUrl(sb, {
        pipelineName: 'SetupPrepaid',
        returnURL: 'http://127.0.0.1:9/return',
        callerReferenceSender: sender,
        callerReferenceFunding: `${sender}:funding`,
        fundingAmount: '40.00',
        paymentReason: 'Prepaid credit — ünïcødé & more',
      }),
    );
    assert.equal(location.searchParams.get('status'), 'SC');
    assert.ok(returnUrlVerifies(location, certificatePem));
    const instrument = location.searchParams.get('prepaidInstrumentID')!;
    const fundingToken = location.searchParams.get('fundingTokenID')!;
    const senderToken = location.searchParams.get('prepaidSenderTokenID')!;

    const funded = await call(sb, 'FundPrepaid', {
      PrepaidInstrumentId: instrument,
      SenderTokenId: fundingToken,
      'FundingAmount.Value': '40.00',
      'FundingAmount.CurrencyCode': 'USD',
      CallerReference: ref('fund'),
    });
    assert.equal(funded.status, 200, funded.body);
    assert.equal(funded.fields.TransactionStatus, 'Success');
    assert.match(funded.body, /<FundPrepaidResponse xmlns="http:\/\/fps\.amazonaws\.com\/doc\/2008-09-17\/">/);

    const pay = {
      SenderTokenId: senderToken,
      'TransactionAmount.Value': '12.50',
      'TransactionAmount.CurrencyCode': 'USD',
      CallerReference: ref('pay a/b c'),
      SenderDescription: 'Ebook: Durable Payments (2nd ed.)',
    };
    const paid = await call(sb, 'Pay', pay, { method: 'GET', hmac: 'HmacSHA1' });
    assert.equal(paid.status, 200, paid.body);
    assert.equal(paid.fields.TransactionStatus, 'Success');
    assert.match(paid.fields.TransactionId, /^[0-9A-Z]{35}$/);
    const replay = await call(sb, 'Pay', pay);
    assert.equal(replay.fields.TransactionId, paid.fields.TransactionId);

    const balance = await call(sb, 'GetPrepaidBalance', { PrepaidInstrumentId: instrument }, { method: 'GET' });
    assert.match(
      balance.body,
      /<AvailableBalance><CurrencyCode>USD<\/CurrencyCode><Value>27\.50<\/Value><\/AvailableBalance>/,
    );

    const status = await call(sb, 'GetTransactionStatus', { TransactionId: paid.fields.TransactionId });
    assert.equal(status.fields.CallerReference, pay.CallerReference);

    const tampered = await call(sb, 'Pay', { ...pay, CallerReference: ref('pay') }, { tamper: true });
    assert.equal(tampered.status, 403);
    assert.equal(tampered.fields.Code, 'SignatureDoesNotMatch');
    assert.match(tampered.fields.RequestID, /^[0-9a-f-]{36}$/);
  });
});
