// Forged FPS callbacks against the real API process (shared stack): nothing that is not signed by
// the allow-listed FPS certificate reaches a workflow. Complements test/api/errors.test.ts (a few
// hand-made forgeries, in-process) with: a key pair and certificate made with openssl and served
// from a host that is not allow-listed (and from the allow-listed host's neighbours), every field of
// a genuine IPN and return tampered (property test), signatures stripped or downgraded, a genuine
// IPN captured from the sandbox's own deliveries re-pointed at another instrument, a return's
// parameters replayed as an IPN. Checked in each workflow's history: no WorkflowExecutionSignaled.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { signCallbackParams } from '../../fps/callback-signature';
import {
  activeInstrument,
  call,
  cbuiDecision,
  getStack,
  sandboxAdmin,
  sandboxPrivateKey,
  until,
  type Stack,
} from './stack';

const SEED = 17_022_026;

async function signalsOf(stack: Stack, workflowId: string): Promise<string[]> {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) =>
    e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.signalName ?? '?'] : [],
  );
}

describe('api: forged return URLs and IPNs never reach a workflow', function () {
  this.timeout(120_000);
  let stack: Stack;
  let tmp: string;
  let forgerKey: string;
  let rogue: http.Server;
  let rogueFetches = 0;
  let rogueUrl: string;
  /** A: has a Pending purchase whose genuine IPN we capture; B: the instrument forgeries try to reach. */
  let a: { instrumentId: string; workflowId: string };
  let b: { instrumentId: string; workflowId: string };
  let genuineIpn: Record<string, string>;
  let attempts = 0;

  before(async function () {
    this.timeout(90_000);
    stack = await getStack();

    // The forger's own key pair and self-signed certificate, made by openssl.
    tmp = mkdtempSync(path.join(os.tmpdir(), 'fps-forgery-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        path.join(tmp, 'key.pem'),
        '-out',
        path.join(tmp, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    forgerKey = readFileSync(path.join(tmp, 'key.pem'), 'utf8');
    const forgerCert = readFileSync(path.join(tmp, 'cert.pem'), 'utf8');
    rogue = http.createServer((_req, res) => {
      rogueFetches++;
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(forgerCert);
    });
    await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
    rogueUrl = `http://127.0.0.1:${(rogue.address() as AddressInfo).port}`;

    const prepaid = { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' };
    [a, b] = await Promise.all([
      activeInstrument(stack, 'forgery-a', prepaid),
      activeInstrument(stack, 'forgery-b', prepaid),
    ]);
    // A genuine IPN: a .13 purchase on A goes Pending, the sandbox signs and delivers the Success.
    const pending = await call(stack, 'POST', `/instruments/${a.instrumentId}/purchases`, {
      body: { amount: '1.13', currency: 'USD' },
      headers: { 'idempotency-key': 'pending-1' },
    });
    assert.equal(pending.status, 202, pending.text);
    genuineIpn = await until(
      'the genuine IPN of A',
      async () => {
        const { deliveries } = await sandboxAdmin(
          stack,
          `/admin/ipn-deliveries?transactionId=${pending.body.transactionId}`,
        );
        const delivered = deliveries.find((d: { status: string }) => d.status === 'delivered');
        return delivered?.params as Record<string, string> | undefined;
      },
      20_000,
      100,
    );
    await until(
      'A settled',
      async () => (await call(stack, 'GET', `/instruments/${a.instrumentId}`)).body.pending.length === 0,
    );
  });

  after(async () => {
    rogue?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    console.log(`      forged callbacks tried: ${attempts}`);
  });

  const ipnUrl = () => `${stack.apiUrl}/fps/ipn`;
  const sandboxCertUrl = () => `${stack.sandboxUrl}/certs/PKICert.pem`;
  const postIpn = async (params: Record<string, string>) => {
    attempts++;
    const response = await fetch(ipnUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => undefined)) as { code?: string } | undefined,
      type: response.headers.get('content-type') ?? '',
    };
  };
  const unsigned = (params: Record<string, string>) => {
    const { signature: _s, signatureVersion: _v, signatureMethod: _m, certificateUrl: _c, ...rest } = params;
    return rest;
  };

  describe('IPNs', () => {
    let signalsA: string[];
    let signalsB: string[];
    before(async () => {
      signalsA = await signalsOf(stack, a.workflowId);
      signalsB = await signalsOf(stack, b.workflowId);
    });

    async function expectRejected(params: Record<string, string>, what: string) {
      const answer = await postIpn(params);
      assert.equal(answer.status, 403, `${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body?.code, 'callback_unverified', what);
      assert.match(answer.type, /^application\/problem\+json/, what);
    }

    it('a genuine IPN of A re-pointed at B fails its signature', async () => {
      const toB = genuineIpn.callerReference.replace(a.instrumentId, b.instrumentId);
      await expectRejected({ ...genuineIpn, callerReference: toB }, 'callerReference → B');
      await expectRejected({ ...genuineIpn, callerReference: `${b.instrumentId}:pay:pending-1` }, 'B:pay:pending-1');
      await expectRejected({ ...genuineIpn, callerReference: toB, transactionStatus: 'FAILURE' }, 'to B and failed');
      // Re-signed by the forger, certificate still claimed to be the sandbox's: fails the sandbox certificate.
      await expectRejected(
        signCallbackParams(
          { ...unsigned(genuineIpn), callerReference: toB },
          { httpMethod: 'POST', urlEndPoint: ipnUrl(), privateKeyPem: forgerKey, certificateUrl: sandboxCertUrl() },
        ),
        'forger key, sandbox certificate URL',
      );
    });

    it('every field of a genuine IPN, tampered, fails (property)', async () => {
      const fields = Object.keys(genuineIpn);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...fields), fc.string({ maxLength: 40 }), async (field, value) => {
          fc.pre(value !== genuineIpn[field]);
          const tampered = { ...genuineIpn, [field]: value };
          // An empty signature field is "missing": refused all the same.
          await expectRejected(tampered, `${field}=${JSON.stringify(value)}`);
        }),
        { seed: SEED, numRuns: 80 },
      );
      // An added parameter, and a removed one, change what was signed.
      await expectRejected({ ...genuineIpn, refundAmount: 'USD 1.13' }, 'added parameter');
      const { statusMessage: _dropped, ...fewer } = genuineIpn;
      await expectRejected(fewer, 'removed parameter');
    });

    it('missing, downgraded or foreign signatures, and certificates from hosts that are not allow-listed, fail (never fetched)', async () => {
      for (const field of ['signature', 'signatureVersion', 'signatureMethod', 'certificateUrl']) {
        const { [field]: _gone, ...rest } = genuineIpn;
        await expectRejected(rest, `without ${field}`);
      }
      await expectRejected({ ...genuineIpn, signatureMethod: 'HmacSHA256' }, 'HmacSHA256');
      await expectRejected({ ...genuineIpn, signatureMethod: 'RSA-SHA256' }, 'RSA-SHA256');
      await expectRejected({ ...genuineIpn, signatureVersion: '1' }, 'version 1');
      await expectRejected(unsigned(genuineIpn), 'unsigned');

      const forged = (certificateUrl: string, params = unsigned(genuineIpn)) =>
        signCallbackParams(
          { ...params, callerReference: params.callerReference.replace(a.instrumentId, b.instrumentId) },
          { httpMethod: 'POST', urlEndPoint: ipnUrl(), privateKeyPem: forgerKey, certificateUrl },
        );
      const sandbox = new URL(stack.sandboxUrl);
      for (const certificateUrl of [
        `${rogueUrl}/certs/PKICert.pem`, // a host of the forger's
        `${rogueUrl.replace('127.0.0.1', 'localhost')}/certs/PKICert.pem`,
        `http://${sandbox.hostname}:${new URL(rogueUrl).port}/certs/PKICert.pem`, // the sandbox's host, another port
        `https://${sandbox.host}/certs/PKICert.pem`, // another scheme
        `http://${sandbox.host}@127.0.0.1:${new URL(rogueUrl).port}/certs/PKICert.pem`, // userinfo trick
        `http://${sandbox.host}/certs/..%2f..%2fevil.pem`, // encoded traversal
        `http://${sandbox.host}/certsevil/PKICert.pem`,
        `http://${sandbox.host}/certs/PKICert.pem?redirect=${encodeURIComponent(rogueUrl)}`,
        `http://${sandbox.host}/certs/PKICert.pem#${rogueUrl}`,
        `file://${path.join(tmp, 'cert.pem')}`,
        `data:application/x-pem-file,${encodeURIComponent(readFileSync(path.join(tmp, 'cert.pem'), 'utf8'))}`,
      ]) {
        await expectRejected(forged(certificateUrl), `certificate at ${certificateUrl.slice(0, 80)}`);
      }
      assert.equal(rogueFetches, 0, 'the forger’s certificate server was never asked');
    });

    it("a return URL's parameters posted as an IPN, and an IPN signed for another endpoint, fail", async () => {
      const created = await call(stack, 'POST', '/customers/forgery-c/instruments', {
        body: { type: 'prepaid', fundingAmount: '5.00', currency: 'USD' },
      });
      const returned = Object.fromEntries(
        new URL(await cbuiDecision(created.body.authorizationUrl, 'approve')).searchParams,
      );
      await expectRejected(returned, 'return parameters as an IPN');
      const key = sandboxPrivateKey(stack);
      await expectRejected(
        signCallbackParams(unsigned(genuineIpn), {
          httpMethod: 'POST',
          urlEndPoint: `${stack.apiUrl}/fps/ipn/other`,
          privateKeyPem: key,
          certificateUrl: sandboxCertUrl(),
        }),
        'signed for another path',
      );
      await expectRejected(
        signCallbackParams(unsigned(genuineIpn), {
          httpMethod: 'POST',
          urlEndPoint: 'http://merchant.example/fps/ipn',
          privateKeyPem: key,
          certificateUrl: sandboxCertUrl(),
        }),
        'signed for another merchant',
      );
      assert.deepEqual(await signalsOf(stack, created.body.workflowId), [], 'the new instrument got no signal');
    });

    it('no forgery reached A or B; the genuine IPN, replayed, is still accepted (and only by A)', async () => {
      assert.deepEqual(await signalsOf(stack, b.workflowId), signalsB, 'B: no new signal');
      assert.deepEqual(await signalsOf(stack, a.workflowId), signalsA, 'A: no new signal');
      const replay = await postIpn(genuineIpn);
      assert.equal(replay.status, 200);
      assert.deepEqual(
        await signalsOf(stack, a.workflowId),
        [...signalsA, 'transactionStatusChanged'],
        'A: the genuine replay only',
      );
      assert.deepEqual(await signalsOf(stack, b.workflowId), signalsB, 'B: still nothing');
    });
  });

  describe('return URLs', () => {
    let d: { instrumentId: string; workflowId: string; genuine: URL };
    let e: { instrumentId: string; workflowId: string };

    before(async () => {
      const body = { type: 'prepaid', fundingAmount: '7.00', currency: 'USD' };
      const [createdD, createdE] = await Promise.all([
        call(stack, 'POST', '/customers/forgery-d/instruments', { body }),
        call(stack, 'POST', '/customers/forgery-e/instruments', { body }),
      ]);
      d = { ...createdD.body, genuine: new URL(await cbuiDecision(createdD.body.authorizationUrl, 'approve')) };
      e = createdE.body;
    });

    async function expectRejected(url: URL | string, what: string) {
      attempts++;
      const response = await fetch(url, { redirect: 'manual' });
      const problem = (await response.json().catch(() => undefined)) as { code?: string } | undefined;
      assert.equal(response.status, 400, `${what}: ${response.status}`);
      assert.equal(problem?.code, 'callback_unverified', what);
    }
    const withParams = (params: Record<string, string>) => {
      const url = new URL(d.genuine.origin + d.genuine.pathname);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      return url;
    };

    it('every field of a genuine return, tampered, fails (property)', async () => {
      const genuine = Object.fromEntries(d.genuine.searchParams);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...Object.keys(genuine)),
          fc.string({ maxLength: 40 }),
          async (field, value) => {
            fc.pre(value !== genuine[field]);
            await expectRejected(withParams({ ...genuine, [field]: value }), `${field}=${JSON.stringify(value)}`);
          },
        ),
        { seed: SEED, numRuns: 60 },
      );
    });

    it("re-pointed at another instrument, re-signed by a forger, or with the forger's certificate: fails", async () => {
      const genuine = Object.fromEntries(d.genuine.searchParams);
      const toE = {
        ...genuine,
        callerReferenceSender: `${e.instrumentId}:sender`,
        callerReferenceFunding: `${e.instrumentId}:funding`,
      };
      await expectRejected(withParams(toE), 'callerReference → E');
      const endpoint = d.genuine.origin + d.genuine.pathname;
      const { signature: _s, signatureVersion: _v, signatureMethod: _m, certificateUrl: _c, ...bare } = genuine;
      await expectRejected(
        withParams(
          signCallbackParams(
            { ...bare, callerReferenceSender: `${e.instrumentId}:sender` },
            { httpMethod: 'GET', urlEndPoint: endpoint, privateKeyPem: forgerKey, certificateUrl: sandboxCertUrl() },
          ),
        ),
        'forger key',
      );
      await expectRejected(
        withParams(
          signCallbackParams(bare, {
            httpMethod: 'GET',
            urlEndPoint: endpoint,
            privateKeyPem: forgerKey,
            certificateUrl: `${rogueUrl}/certs/PKICert.pem`,
          }),
        ),
        'forger certificate',
      );
      await expectRejected(
        withParams(
          signCallbackParams(bare, {
            httpMethod: 'POST',
            urlEndPoint: endpoint,
            privateKeyPem: sandboxPrivateKey(stack),
            certificateUrl: sandboxCertUrl(),
          }),
        ),
        'signed as a POST',
      );
      await expectRejected(withParams(bare), 'unsigned');
      assert.equal(rogueFetches, 0, 'the forger’s certificate server was never asked');
    });

    it('no forgery reached D or E; the genuine return is signalled to D only', async () => {
      assert.deepEqual(await signalsOf(stack, d.workflowId), []);
      assert.deepEqual(await signalsOf(stack, e.workflowId), []);
      const answer = await fetch(d.genuine, { redirect: 'manual' });
      assert.equal(answer.status, 303);
      assert.deepEqual(await signalsOf(stack, d.workflowId), ['authorizationReturned']);
      assert.deepEqual(await signalsOf(stack, e.workflowId), []);
    });
  });
});
