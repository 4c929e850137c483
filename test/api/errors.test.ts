// The merchant API's edges, in-process against the real Temporal server and a real sandbox process
// but no worker: authentication, the problem+json error model, validation, idempotent creates,
// the OpenAPI document, and signed callbacks (forged ones never reach a workflow).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { signCallbackParams } from '../../fps/callback-signature';
import { openApiPath } from '../../api/openapi';
import { call, cbuiDecision, sandboxPrivateKey, startInProcessApi, until, type InProcessApi } from './stack';

const PROBLEM = /^application\/problem\+json/;

function assertProblem(
  answer: { status: number; headers: Headers; body: any },
  status: number,
  code: string,
  field?: string,
) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.match(answer.headers.get('content-type') ?? '', PROBLEM);
  assert.equal(answer.body.status, status);
  assert.equal(answer.body.code, code);
  assert.equal(typeof answer.body.title, 'string');
  assert.equal(answer.body.type, `/problems/${code}`);
  if (field !== undefined) assert.equal(answer.body.field, field);
}

async function signals(api: InProcessApi, workflowId: string): Promise<string[]> {
  const history = await api.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) =>
    e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.signalName ?? ''] : [],
  );
}

describe('api: errors, auth, validation and callbacks (in-process, no worker)', function () {
  this.timeout(60_000);
  let api: InProcessApi;
  const prepaid = { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' };

  before(async () => {
    api = await startInProcessApi();
  });
  after(async () => {
    await api?.close();
  });

  describe('authentication', () => {
    it('401 without a key, with WWW-Authenticate', async () => {
      const answer = await call(api, 'GET', '/instruments/ins_x', { key: null });
      assertProblem(answer, 401, 'missing_api_key');
      assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/);
    });
    it('401 with a wrong key (X-Api-Key or Bearer), including keys of other lengths', async () => {
      for (const key of ['wrong', `${api.apiKey}x`, api.apiKey.slice(0, -1), '']) {
        assertProblem(await call(api, 'GET', '/instruments/ins_x', { key: key || 'a' }), 401, 'invalid_api_key');
      }
      assertProblem(
        await call(api, 'GET', '/instruments/ins_x', { key: null, headers: { authorization: 'Bearer nope' } }),
        401,
        'invalid_api_key',
      );
    });
    it('accepts Authorization: Bearer', async () => {
      const answer = await call(api, 'POST', '/customers/cust-bearer/instruments', {
        key: null,
        headers: { authorization: `Bearer ${api.apiKey}` },
        body: prepaid,
      });
      assert.equal(answer.status, 201, answer.text);
    });
    it('service routes, callbacks and the storefront need no key', async () => {
      assert.equal((await call(api, 'GET', '/healthz', { key: null })).status, 200);
      assert.equal((await call(api, 'GET', '/openapi.json', { key: null })).status, 200);
      const page = await fetch(`${api.apiUrl}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await page.text(), /Authorize with Amazon Payments/);
    });
  });

  describe('the problem+json error model', () => {
    it('404 for an unknown route, never an HTML page', async () => {
      assertProblem(await call(api, 'GET', '/no/such/route'), 404, 'not_found');
      assertProblem(await call(api, 'DELETE', '/instruments/ins_x'), 404, 'not_found');
    });
    it('400 for malformed JSON', async () => {
      assertProblem(
        await call(api, 'POST', '/customers/c1/instruments', {
          raw: '{"type": "prepaid",',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'malformed_json',
      );
    });
    it('413 for a body over 16 kB', async () => {
      const raw = JSON.stringify({ ...prepaid, description: 'x'.repeat(20_000) });
      assertProblem(
        await call(api, 'POST', '/customers/c1/instruments', { raw, headers: { 'content-type': 'application/json' } }),
        413,
        'payload_too_large',
      );
    });
    it('415 for a body that is not JSON', async () => {
      assertProblem(
        await call(api, 'POST', '/customers/c1/instruments', {
          raw: 'type=prepaid',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
        415,
        'unsupported_media_type',
      );
    });
    it('404 for an unknown instrument, on reads and on operations', async () => {
      assertProblem(await call(api, 'GET', '/instruments/ins_doesnotexist0000000'), 404, 'instrument_not_found');
      assertProblem(
        await call(api, 'POST', '/instruments/ins_doesnotexist0000000/purchases', {
          body: { amount: '1.00', currency: 'USD' },
        }),
        404,
        'instrument_not_found',
      );
      assertProblem(
        await call(api, 'POST', '/instruments/ins_doesnotexist0000000/close', { body: {} }),
        404,
        'instrument_not_found',
      );
      assertProblem(await call(api, 'GET', `/instruments/${'x'.repeat(41)}`), 404, 'instrument_not_found');
      assertProblem(await call(api, 'GET', '/instruments/bad:id'), 404, 'instrument_not_found');
    });
  });

  describe('validation (422 with the field at fault)', () => {
    const cases: Array<[string, unknown, string, string]> = [
      ['a number instead of a decimal string', { ...prepaid, fundingAmount: 20 }, 'validation_failed', 'fundingAmount'],
      [
        'a float string with too many decimals',
        { ...prepaid, fundingAmount: '20.001' },
        'invalid_amount',
        'fundingAmount',
      ],
      ['a negative amount', { ...prepaid, fundingAmount: '-5.00' }, 'invalid_amount', 'fundingAmount'],
      ['zero', { ...prepaid, fundingAmount: '0.00' }, 'invalid_amount', 'fundingAmount'],
      ['an exponent', { ...prepaid, fundingAmount: '1e3' }, 'invalid_amount', 'fundingAmount'],
      ['an absurd amount', { ...prepaid, fundingAmount: '99999999999999999' }, 'invalid_amount', 'fundingAmount'],
      ['a missing amount', { type: 'prepaid', currency: 'USD' }, 'validation_failed', 'fundingAmount'],
      ['an unsupported currency', { ...prepaid, currency: 'XXX' }, 'validation_failed', 'currency'],
      ['an unknown type', { ...prepaid, type: 'credit' }, 'validation_failed', 'type'],
      ['an unknown field', { ...prepaid, fundingAmmount: '1.00' }, 'validation_failed', 'fundingAmmount'],
      [
        'postpaid without globalAmountLimit',
        { type: 'postpaid', creditLimit: '50.00', currency: 'USD' },
        'validation_failed',
        'globalAmountLimit',
      ],
      [
        'postpaid with globalAmountLimit below creditLimit',
        { type: 'postpaid', creditLimit: '50.00', globalAmountLimit: '10.00', currency: 'USD' },
        'invalid_amount',
        'globalAmountLimit',
      ],
      [
        'a returnTo on another site',
        { ...prepaid, returnTo: 'https://evil.example/' },
        'validation_failed',
        'returnTo',
      ],
      ['a protocol-relative returnTo', { ...prepaid, returnTo: '//evil.example/' }, 'validation_failed', 'returnTo'],
      ['JPY with decimals', { ...prepaid, currency: 'JPY', fundingAmount: '100.5' }, 'invalid_amount', 'fundingAmount'],
    ];
    for (const [name, body, code, field] of cases) {
      it(`create instrument: ${name}`, async () => {
        assertProblem(await call(api, 'POST', '/customers/cust-1/instruments', { body }), 422, code, field);
      });
    }
    it('create instrument: an invalid customer id', async () => {
      assertProblem(
        await call(api, 'POST', `/customers/${'c'.repeat(65)}/instruments`, { body: prepaid }),
        422,
        'validation_failed',
        'customerId',
      );
      assertProblem(
        await call(api, 'POST', `/customers/${encodeURIComponent('a"b')}/instruments`, { body: prepaid }),
        422,
        'validation_failed',
        'customerId',
      );
      assertProblem(
        await call(api, 'GET', `/customers/${encodeURIComponent("x' OR 1=1")}/instruments`),
        422,
        'validation_failed',
        'customerId',
      );
    });
    it('purchase: bad amounts, bad Idempotency-Key, key and purchaseId disagreeing', async () => {
      const path = '/instruments/ins_any000000000000000/purchases';
      assertProblem(
        await call(api, 'POST', path, { body: { amount: 4.99, currency: 'USD' } }),
        422,
        'validation_failed',
        'amount',
      );
      assertProblem(
        await call(api, 'POST', path, { body: { amount: '4.999', currency: 'USD' } }),
        422,
        'invalid_amount',
        'amount',
      );
      assertProblem(
        await call(api, 'POST', path, { body: { amount: '0', currency: 'USD' } }),
        422,
        'invalid_amount',
        'amount',
      );
      assertProblem(await call(api, 'POST', path, { body: { amount: '1.00' } }), 422, 'validation_failed', 'currency');
      assertProblem(
        await call(api, 'POST', path, { body: { amount: '1.00', currency: 'USD', purchaseId: 'a:b' } }),
        422,
        'validation_failed',
        'purchaseId',
      );
      for (const key of ['has space', 'x'.repeat(65), 'colon:key', 'ünïcode']) {
        const headers = { 'idempotency-key': encodeURIComponent(key) === key ? key : 'bad%key' };
        assertProblem(
          await call(api, 'POST', path, { body: { amount: '1.00', currency: 'USD' }, headers }),
          422,
          'validation_failed',
          'Idempotency-Key',
        );
      }
      assertProblem(
        await call(api, 'POST', path, {
          body: { amount: '1.00', currency: 'USD', purchaseId: 'order-1' },
          headers: { 'idempotency-key': 'order-2' },
        }),
        422,
        'idempotency_key_mismatch',
        'purchaseId',
      );
    });
    it('operations: an amount without a currency and vice versa, unknown fields', async () => {
      const base = '/instruments/ins_any000000000000000';
      assertProblem(
        await call(api, 'POST', `${base}/settle`, { body: { amount: '1.00' } }),
        422,
        'validation_failed',
        'currency',
      );
      assertProblem(
        await call(api, 'POST', `${base}/write-off`, { body: { currency: 'USD' } }),
        422,
        'validation_failed',
        'amount',
      );
      assertProblem(await call(api, 'POST', `${base}/refunds`, { body: {} }), 422, 'validation_failed', 'purchaseId');
      assertProblem(await call(api, 'POST', `${base}/void`, { body: { why: 'x' } }), 422, 'validation_failed', 'why');
      assertProblem(
        await call(api, 'POST', `${base}/fund`, { body: { amount: '-1', currency: 'USD' } }),
        422,
        'invalid_amount',
        'amount',
      );
    });
  });

  describe('creating instruments', () => {
    it('201 with a workflow, search attributes and a signed CBUI URL the sandbox accepts', async () => {
      const created = await call(api, 'POST', '/customers/cust-create/instruments', {
        body: { ...prepaid, description: 'Welcome pack' },
      });
      assert.equal(created.status, 201, created.text);
      const { instrumentId, workflowId, authorizationUrl, state, links } = created.body;
      assert.match(instrumentId, /^ins_[a-z2-7]{20}$/);
      assert.equal(workflowId, `instrument-${instrumentId}`);
      assert.equal(state, 'awaitingAuthorization');
      assert.equal(created.headers.get('location'), `/instruments/${instrumentId}`);
      assert.equal(links.temporalUi, `${api.cfg.temporal.uiUrl}/namespaces/default/workflows/${workflowId}`);
      const url = new URL(authorizationUrl);
      assert.equal(url.origin + url.pathname, `${api.sandboxUrl}/cobranded-ui/actions/start`);
      assert.equal(url.searchParams.get('pipelineName'), 'SetupPrepaid');
      assert.equal(url.searchParams.get('fundingAmount'), '20.00');
      assert.equal(url.searchParams.get('callerReferenceSender'), `${instrumentId}:sender`);
      assert.equal(url.searchParams.get('callerReferenceFunding'), `${instrumentId}:funding`);
      assert.equal(url.searchParams.get('returnURL'), `${api.apiUrl}/fps/return`);

      const description = await api.client.workflow.getHandle(workflowId).describe();
      assert.equal(description.type, 'instrumentWorkflow');
      assert.equal(description.taskQueue, api.cfg.temporal.taskQueue);
      assert.deepEqual(description.searchAttributes.CustomerId, ['cust-create']);
      assert.deepEqual(description.searchAttributes.InstrumentType, ['prepaid']);
      assert.deepEqual(description.searchAttributes.InstrumentState, ['awaitingAuthorization']);
      assert.match(
        (await description.staticSummary()) ?? '',
        new RegExp(`prepaid instrument ${instrumentId} for customer cust-create`),
      );

      // The sandbox accepts our signature (it would answer an error page otherwise).
      const returnUrl = await cbuiDecision(authorizationUrl, 'approve');
      assert.ok(returnUrl.startsWith(`${api.apiUrl}/fps/return?`));
    });

    it('postpaid and single-use pipelines carry their own references and limits', async () => {
      const postpaid = await call(api, 'POST', '/customers/cust-create/instruments', {
        body: { type: 'postpaid', creditLimit: '50.00', globalAmountLimit: '500.00', currency: 'USD' },
      });
      assert.equal(postpaid.status, 201, postpaid.text);
      const p = new URL(postpaid.body.authorizationUrl).searchParams;
      assert.equal(p.get('pipelineName'), 'SetupPostpaid');
      assert.equal(p.get('creditLimit'), '50.00');
      assert.equal(p.get('globalAmountLimit'), '500.00');
      assert.equal(p.get('callerReferenceSettlement'), `${postpaid.body.instrumentId}:settlement`);
      const single = await call(api, 'POST', '/customers/cust-create/instruments', {
        body: { type: 'single-use', amount: '9.99', currency: 'USD', singleUseMode: 'reserve' },
      });
      assert.equal(single.status, 201, single.text);
      const q = new URL(single.body.authorizationUrl).searchParams;
      assert.equal(q.get('pipelineName'), 'SingleUse');
      assert.equal(q.get('transactionAmount'), '9.99');
      assert.equal(q.get('callerReference'), `${single.body.instrumentId}:authorize`);
    });

    it('the same Idempotency-Key returns the same instrument; with another body it is refused', async () => {
      const headers = { 'idempotency-key': 'signup-42' };
      const first = await call(api, 'POST', '/customers/cust-idem/instruments', { body: prepaid, headers });
      const second = await call(api, 'POST', '/customers/cust-idem/instruments', { body: prepaid, headers });
      assert.equal(first.status, 201, first.text);
      assert.equal(second.status, 200, second.text);
      assert.deepEqual(second.body, first.body);
      assertProblem(
        await call(api, 'POST', '/customers/cust-idem/instruments', {
          body: { ...prepaid, fundingAmount: '25.00' },
          headers,
        }),
        422,
        'idempotency_key_reused',
        'Idempotency-Key',
      );
      // Another customer may use the same key.
      const other = await call(api, 'POST', '/customers/cust-idem-2/instruments', { body: prepaid, headers });
      assert.equal(other.status, 201);
      assert.notEqual(other.body.instrumentId, first.body.instrumentId);
    });

    it("lists a customer's instruments from Temporal visibility", async () => {
      const a = await call(api, 'POST', '/customers/cust-list/instruments', { body: prepaid });
      const b = await call(api, 'POST', '/customers/cust-list/instruments', {
        body: { type: 'postpaid', creditLimit: '5.00', globalAmountLimit: '5.00', currency: 'USD' },
      });
      const listed = await until('both instruments listed', async () => {
        const answer = await call(api, 'GET', '/customers/cust-list/instruments');
        return answer.body.instruments.length === 2 && answer;
      });
      assert.equal(listed.status, 200);
      assert.equal(listed.body.customerId, 'cust-list');
      const ids = listed.body.instruments.map((i: any) => i.instrumentId).sort();
      assert.deepEqual(ids, [a.body.instrumentId, b.body.instrumentId].sort());
      for (const i of listed.body.instruments) {
        assert.equal(i.status, 'RUNNING');
        assert.equal(i.state, 'awaitingAuthorization');
        assert.ok(['prepaid', 'postpaid'].includes(i.type));
        assert.equal(i.links.self, `/instruments/${i.instrumentId}`);
      }
      assert.deepEqual((await call(api, 'GET', '/customers/nobody-here/instruments')).body.instruments, []);
    });
  });

  describe('GET /fps/return', () => {
    async function newInstrument(body: Record<string, unknown> = prepaid) {
      const created = await call(api, 'POST', '/customers/cust-return/instruments', { body });
      assert.equal(created.status, 201, created.text);
      return created.body as { instrumentId: string; workflowId: string; authorizationUrl: string };
    }

    it('rejects a tampered return (400) and signals nothing; the genuine one is signalled and redirects (303)', async () => {
      const { instrumentId, workflowId, authorizationUrl } = await newInstrument();
      const genuine = new URL(await cbuiDecision(authorizationUrl, 'approve'));
      assert.equal(genuine.searchParams.get('status')?.startsWith('S'), true);

      for (const [name, value] of [
        ['prepaidSenderTokenID', 'TOKENFORGED'],
        ['status', genuine.searchParams.get('status') === 'SA' ? 'SB' : 'SA'],
        ['callerReferenceSender', `${instrumentId}:funding`],
        ['signature', 'AAAA'],
        ['certificateUrl', 'http://evil.example/certs/PKICert.pem'],
      ]) {
        const forged = new URL(genuine);
        forged.searchParams.set(name, value);
        const answer = await fetch(forged, { redirect: 'manual' });
        assert.equal(answer.status, 400, `tampered ${name}`);
        assert.equal(((await answer.json()) as { code: string }).code, 'callback_unverified');
      }
      const stripped = new URL(genuine);
      stripped.searchParams.delete('signature');
      assert.equal((await fetch(stripped, { redirect: 'manual' })).status, 400);
      // Parameters repeated to smuggle a second value are refused before verification.
      assert.equal((await fetch(`${genuine.href}&status=A`, { redirect: 'manual' })).status, 400);
      assert.deepEqual(await signals(api, workflowId), []);

      const answer = await fetch(genuine, { redirect: 'manual' });
      assert.equal(answer.status, 303);
      assert.equal(answer.headers.get('location'), `/?instrument=${instrumentId}&authorization=authorized`);
      assert.deepEqual(await signals(api, workflowId), ['authorizationReturned']);
    });

    it('an aborted authorization is signalled and reported; returnTo is honoured', async () => {
      const { instrumentId, workflowId, authorizationUrl } = await newInstrument({
        ...prepaid,
        returnTo: '/shop/after-authorization?x=1',
      });
      const answer = await fetch(await cbuiDecision(authorizationUrl, 'abort'), { redirect: 'manual' });
      assert.equal(answer.status, 303);
      assert.equal(
        answer.headers.get('location'),
        `/shop/after-authorization?x=1&instrument=${instrumentId}&authorization=aborted`,
      );
      assert.deepEqual(await signals(api, workflowId), ['authorizationReturned']);
    });

    it('a genuine return for an instrument that does not exist is a 404', async () => {
      const params = signCallbackParams(
        {
          status: 'SA',
          callerReferenceSender: 'ins_nosuchinstrument000:sender',
          prepaidInstrumentID: 'P',
          fundingTokenID: 'F',
          prepaidSenderTokenID: 'S',
        },
        {
          httpMethod: 'GET',
          urlEndPoint: `${api.apiUrl}/fps/return`,
          privateKeyPem: sandboxPrivateKey(api),
          certificateUrl: `${api.sandboxUrl}/certs/PKICert.pem`,
        },
      );
      const answer = await fetch(`${api.apiUrl}/fps/return?${new URLSearchParams(params)}`, { redirect: 'manual' });
      assert.equal(answer.status, 404);
      assert.equal(((await answer.json()) as { code: string }).code, 'instrument_not_found');
    });
  });

  describe('POST /fps/ipn', () => {
    let instrumentId: string;
    let workflowId: string;
    const certificateUrl = () => `${api.sandboxUrl}/certs/PKICert.pem`;
    const ipnFields = () => ({
      notificationType: 'TransactionStatus',
      transactionId: 'TX-IPN-TEST-1',
      transactionStatus: 'SUCCESS',
      statusCode: 'Success',
      statusMessage: 'The transaction was successful',
      callerReference: `${instrumentId}:pay:order-1`,
      operation: 'PAY',
      transactionAmount: 'USD 1.13',
      transactionDate: '1700000000',
      paymentMethod: 'CC',
    });
    const sign = (params: Record<string, string>, privateKeyPem = sandboxPrivateKey(api), certUrl = certificateUrl()) =>
      signCallbackParams(params, {
        httpMethod: 'POST',
        urlEndPoint: `${api.apiUrl}/fps/ipn`,
        privateKeyPem,
        certificateUrl: certUrl,
      });
    const post = (params: Record<string, string>, contentType = 'application/x-www-form-urlencoded') =>
      call(api, 'POST', '/fps/ipn', {
        key: null,
        raw: new URLSearchParams(params).toString(),
        headers: { 'content-type': contentType },
      });

    before(async () => {
      const created = await call(api, 'POST', '/customers/cust-ipn/instruments', { body: prepaid });
      ({ instrumentId, workflowId } = created.body);
    });

    it('forged IPNs are 403 and never reach the workflow', async () => {
      const genuine = sign(ipnFields());
      const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString();

      // A server that would hand out the forger's certificate, on a URL that is not allow-listed.
      const rogue = http.createServer((_req, res) => res.end('not a certificate'));
      await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
      const rogueUrl = `http://127.0.0.1:${(rogue.address() as AddressInfo).port}/certs/PKICert.pem`;
      try {
        const forgeries: Array<[string, Record<string, string>]> = [
          ['unsigned', ipnFields()],
          ['tampered status', { ...genuine, transactionStatus: 'FAILURE' }],
          ['tampered amount', { ...genuine, transactionAmount: 'USD 100.00' }],
          ['tampered reference', { ...genuine, callerReference: `${instrumentId}:pay:order-2` }],
          ['signed by another key', sign(ipnFields(), foreign)],
          ['certificate from a rogue host', sign(ipnFields(), foreign, rogueUrl)],
          [
            'signed for another endpoint',
            signCallbackParams(ipnFields(), {
              httpMethod: 'POST',
              urlEndPoint: `${api.apiUrl}/other`,
              privateKeyPem: sandboxPrivateKey(api),
              certificateUrl: certificateUrl(),
            }),
          ],
          [
            'signed as a GET',
            signCallbackParams(ipnFields(), {
              httpMethod: 'GET',
              urlEndPoint: `${api.apiUrl}/fps/ipn`,
              privateKeyPem: sandboxPrivateKey(api),
              certificateUrl: certificateUrl(),
            }),
          ],
        ];
        for (const [, params] of forgeries) assertProblem(await post(params), 403, 'callback_unverified');
      } finally {
        rogue.close();
      }
      assert.deepEqual(await signals(api, workflowId), []);
    });

    it('a genuine IPN is signalled, and redelivery is answered 200 again (the workflow deduplicates)', async () => {
      const genuine = sign(ipnFields());
      for (let delivery = 0; delivery < 2; delivery++) {
        const answer = await post(genuine);
        assert.equal(answer.status, 200, answer.text);
        assert.deepEqual(answer.body, { received: true, signalled: true });
      }
      assert.deepEqual(await signals(api, workflowId), ['transactionStatusChanged', 'transactionStatusChanged']);
    });

    it('acknowledges (200) a genuine IPN for an unknown instrument so FPS stops retrying', async () => {
      const answer = await post(sign({ ...ipnFields(), callerReference: 'ins_unknown0000000000:pay:x' }));
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, { received: true, signalled: false });
    });

    it('400 for a verified but unusable IPN, 415 for JSON', async () => {
      assertProblem(
        await post(sign({ ...ipnFields(), transactionStatus: 'MAYBE' })),
        400,
        'callback_invalid',
        'transactionStatus',
      );
      assertProblem(
        await call(api, 'POST', '/fps/ipn', { key: null, body: ipnFields() }),
        415,
        'unsupported_media_type',
      );
    });
  });

  describe('OpenAPI', () => {
    it('documents every mounted route, with responses and the error schema', async () => {
      const answer = await call(api, 'GET', '/openapi.json', { key: null });
      const doc = answer.body;
      assert.equal(doc.openapi, '3.1.0');
      const mounted = (api.app.router.stack as Array<{ route?: { path: string; methods: Record<string, boolean> } }>)
        .filter((layer) => layer.route)
        .flatMap((layer) =>
          Object.keys(layer.route!.methods).map((method) => `${method} ${openApiPath(layer.route!.path)}`),
        );
      assert.ok(mounted.length >= 19, mounted.join(', '));
      const documented = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m} ${path}`),
      );
      assert.deepEqual(documented.sort(), mounted.sort());
      for (const expected of [
        'post /customers/{customerId}/instruments',
        'get /customers/{customerId}/instruments',
        'get /instruments/{instrumentId}',
        'post /instruments/{instrumentId}/purchases',
        'post /instruments/{instrumentId}/fund',
        'post /instruments/{instrumentId}/settle',
        'post /instruments/{instrumentId}/write-off',
        'post /instruments/{instrumentId}/refunds',
        'post /instruments/{instrumentId}/capture',
        'post /instruments/{instrumentId}/void',
        'post /instruments/{instrumentId}/close',
        'get /fps/return',
        'post /fps/ipn',
        'get /openapi.json',
        'get /healthz',
        'get /readyz',
        'get /instruments/{instrumentId}/transactions',
        'get /instruments/{instrumentId}/purchases/{purchaseId}',
        'get /instruments/{instrumentId}/statement',
        'get /customers/{customerId}/statement',
      ]) {
        assert.ok(documented.includes(expected), `${expected} missing`);
      }
      const purchase = doc.paths['/instruments/{instrumentId}/purchases'].post;
      for (const status of ['201', '202', '400', '401', '402', '404', '409', '413', '415', '422'])
        assert.ok(purchase.responses[status], `purchase ${status}`);
      assert.equal(
        purchase.requestBody.content['application/json'].schema.$ref,
        '#/components/schemas/PurchaseRequest',
      );
      assert.equal(
        purchase.responses['402'].content['application/problem+json'].schema.$ref,
        '#/components/schemas/Problem',
      );
      assert.ok(purchase.parameters.some((p: any) => p.name === 'Idempotency-Key' && p.in === 'header'));
      // Every $ref resolves.
      const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
      for (const ref of new Set(refs)) assert.ok(doc.components.schemas[ref.split('/').pop()!], `${ref} unresolved`);
      // Amounts are documented as strings, never numbers.
      assert.equal(doc.components.schemas.PurchaseRequest.properties.amount.type, 'string');
      assert.deepEqual(doc.components.schemas.CreateInstrumentRequest.oneOf.length, 3);
      // The record's reads: query parameters, the page schema, statements as JSON or CSV.
      const transactions = doc.paths['/instruments/{instrumentId}/transactions'].get;
      assert.deepEqual(
        transactions.parameters.filter((p: any) => p.in === 'query').map((p: any) => p.name),
        ['limit', 'cursor', 'operation', 'status', 'from', 'to'],
      );
      assert.equal(
        transactions.responses['200'].content['application/json'].schema.$ref,
        '#/components/schemas/TransactionPage',
      );
      assert.ok(transactions.responses['400'] && transactions.responses['404'] && transactions.responses['503']);
      const statement = doc.paths['/instruments/{instrumentId}/statement'].get;
      assert.deepEqual(Object.keys(statement.responses['200'].content).sort(), ['application/json', 'text/csv']);
      assert.equal(
        doc.paths['/instruments/{instrumentId}/purchases/{purchaseId}'].get.responses['200'].content['application/json']
          .schema.$ref,
        '#/components/schemas/PurchaseRecord',
      );
      assert.ok(
        doc.paths['/customers/{customerId}/statement'].get.parameters.some(
          (p: any) => p.name === 'month' && p.required,
        ),
      );
    });
  });

  describe('the record without a ledger', () => {
    it('its reads answer 503 ledger_unavailable; a purchase lookup falls back to the workflow', async () => {
      for (const path of [
        '/instruments/ins_x/transactions',
        '/instruments/ins_x/statement',
        '/customers/c1/statement?month=2026-01',
      ])
        assertProblem(await call(api, 'GET', path), 503, 'ledger_unavailable');
      assertProblem(await call(api, 'GET', '/instruments/ins_x/purchases/p1'), 404, 'instrument_not_found');
    });
  });

  describe('health', () => {
    it('healthz is up and readyz reaches Temporal', async () => {
      assert.deepEqual((await call(api, 'GET', '/healthz', { key: null })).body, { status: 'ok' });
      const ready = await call(api, 'GET', '/readyz', { key: null });
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, 'ok');
    });
  });
});
