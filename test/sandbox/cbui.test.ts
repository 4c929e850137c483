// The sandbox's Co-Branded UI against a real process: the three pipelines approved through the
// X-Sandbox-Decision header and through the page's form, signed return URLs that verify with the
// served certificate, aborts, caller exceptions, idempotent approval and bad merchant signatures.
import assert from 'node:assert/strict';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { verifyCallbackSignature } from '../../fps/callback-signature';
import { CallbackVerifier } from '../../fps/callback-verifier';
import { cbuiParams, parseCbuiReturn, type CbuiRequest } from '../../fps/cbui';
import { signCbuiParams, toQueryString } from '../../fps/signature';
import {
  CBUI_PATH,
  cbuiUrl,
  decideCbui,
  expectFpsError,
  ref,
  RETURN_URL,
  startSandbox,
  usd,
  type CbuiRedirect,
  type PipelineInput,
  type TestSandbox,
} from './support';

describe('sandbox Co-Branded UI (real process)', function () {
  this.timeout(30_000);
  let sb: TestSandbox;
  let certificatePem: string;

  before(async () => {
    sb = await startSandbox({ name: 'cbui' });
    certificatePem = await (await fetch(`${sb.url}/certs/PKICert.pem`)).text();
  });
  after(async () => sb?.stop());

  const pipelines: Array<{ input: () => PipelineInput; tokens: string[] }> = [
    {
      input: () => ({ pipeline: 'SingleUse', callerReference: ref('su'), transactionAmount: usd('12.50') }),
      tokens: ['tokenID'],
    },
    {
      input: () => ({
        pipeline: 'SetupPrepaid',
        callerReferenceSender: ref('ps'),
        callerReferenceFunding: ref('pf'),
        fundingAmount: usd('100.00'),
      }),
      tokens: ['prepaidInstrumentID', 'fundingTokenID', 'prepaidSenderTokenID'],
    },
    {
      input: () => ({
        pipeline: 'SetupPostpaid',
        callerReferenceSender: ref('cs'),
        callerReferenceSettlement: ref('cst'),
        creditLimit: usd('50.00'),
        globalAmountLimit: usd('500.00'),
      }),
      tokens: ['creditInstrumentID', 'creditSenderTokenID', 'settlementTokenID'],
    },
  ];

  /** The redirect's signature, checked with the certificate the sandbox serves. */
  const assertSigned = (redirect: CbuiRedirect) => {
    const urlEndPoint = `${redirect.location.origin}${redirect.location.pathname}`;
    assert.equal(redirect.params.signatureMethod, 'RSA-SHA1');
    assert.equal(redirect.params.signatureVersion, '2');
    assert.equal(redirect.params.certificateUrl, `${sb.url}/certs/PKICert.pem`);
    assert.ok(
      verifyCallbackSignature(redirect.params, { httpMethod: 'GET', urlEndPoint, certificatePem }),
      'return URL signature verifies',
    );
    assert.ok(
      !verifyCallbackSignature(
        { ...redirect.params, status: 'SB' },
        { httpMethod: 'GET', urlEndPoint, certificatePem },
      ),
      'a tampered one does not',
    );
  };

  for (const { input, tokens } of pipelines) {
    const name = input().pipeline;
    it(`${name}: approve -> 302 to returnURL with signed tokens; approving again returns the same tokens`, async () => {
      const request = input();
      const redirect = await decideCbui(cbuiUrl(sb, request), 'approve');
      assert.equal(`${redirect.location.origin}${redirect.location.pathname}`, RETURN_URL);
      assert.equal(redirect.params.status, 'SC');
      for (const token of tokens) assert.match(redirect.params[token], /^[0-9A-Z]{64}$/, token);
      assert.match(redirect.params.expiry, /^\d{2}\/\d{4}$/);
      if (request.pipeline === 'SingleUse') assert.equal(redirect.params.callerReference, request.callerReference);
      else assert.equal(redirect.params.callerReferenceSender, request.callerReferenceSender);
      assertSigned(redirect);

      const parsed = parseCbuiReturn(request.pipeline, redirect.params);
      assert.equal(parsed.outcome, 'authorized');
      // The merchant side's full check: allow-listed certificate URL, fetched from the sandbox.
      const verifier = new CallbackVerifier({ certificateUrlAllowlist: [`${sb.url}/certs/`] });
      assert.deepEqual(await verifier.verify({ httpMethod: 'GET', urlEndPoint: RETURN_URL, params: redirect.params }), {
        ok: true,
      });
      // And through the VerifySignature action, with the parameters as received.
      const verified = await sb.call('VerifySignature', {
        urlEndPoint: RETURN_URL,
        httpParameters: redirect.location.search.slice(1),
      });
      assert.equal(verified.verificationStatus, 'Success');
      const forged = redirect.location.search.slice(1).replace('status=SC', 'status=SA');
      assert.equal(
        (await sb.call('VerifySignature', { urlEndPoint: RETURN_URL, httpParameters: forged })).verificationStatus,
        'Failure',
      );
      assert.equal(
        (
          await sb.call('VerifySignature', {
            urlEndPoint: 'https://evil.example.com/fps/return',
            httpParameters: redirect.location.search.slice(1),
          })
        ).verificationStatus,
        'Failure',
      );

      const again = await decideCbui(cbuiUrl(sb, request), 'approve');
      for (const token of tokens) assert.equal(again.params[token], redirect.params[token]);
    });

    it(`${name}: abort -> status A, signed, nothing created`, async () => {
      const request = input();
      const redirect = await decideCbui(cbuiUrl(sb, request), 'abort');
      assert.equal(redirect.params.status, 'A');
      for (const token of tokens) assert.equal(redirect.params[token], undefined);
      assertSigned(redirect);
      assert.equal(parseCbuiReturn(request.pipeline, redirect.params).outcome, 'aborted');
      const reference = request.pipeline === 'SingleUse' ? request.callerReference : request.callerReferenceSender;
      await expectFpsError(sb.call('GetTokenByCaller', { callerReference: reference }), 'InvalidTokenId');
    });
  }

  it('the tokens work: a single-use token pays, GetTokenByCaller knows all pipeline tokens', async () => {
    const callerReference = ref('su');
    const { params } = await decideCbui(
      cbuiUrl(sb, { pipeline: 'SingleUse', callerReference, transactionAmount: usd('5.00') }),
    );
    const token = await sb.call('GetTokenByCaller', { callerReference });
    assert.deepEqual([token.tokenId, token.tokenType, token.tokenStatus], [params.tokenID, 'SingleUse', 'Active']);
    assert.equal(
      (
        await sb.call('Pay', {
          senderTokenId: params.tokenID,
          transactionAmount: usd('5.00'),
          callerReference: ref('pay'),
        })
      ).transactionStatus,
      'Success',
    );
  });

  it('the same callerReference with different parameters is a caller exception (CE), signed', async () => {
    const callerReference = ref('su');
    await decideCbui(cbuiUrl(sb, { pipeline: 'SingleUse', callerReference, transactionAmount: usd('5.00') }));
    const redirect = await decideCbui(
      cbuiUrl(sb, { pipeline: 'SingleUse', callerReference, transactionAmount: usd('6.00') }),
    );
    assert.equal(redirect.params.status, 'CE');
    assert.match(redirect.params.errorMessage, /different parameters/);
    assertSigned(redirect);
    const parsed = parseCbuiReturn('SingleUse', redirect.params);
    assert.equal(parsed.outcome, 'failed');
  });

  it('invalid pipeline parameters come back as CE with an errorMessage', async () => {
    const sign = (params: Record<string, string>) => {
      const signed = signCbuiParams(params, { host: new URL(sb.url).host, path: CBUI_PATH }, DEV_SECRET_KEY);
      return `${sb.url}${CBUI_PATH}?${toQueryString(signed)}`;
    };
    const base = {
      callerKey: DEV_ACCESS_KEY_ID,
      returnURL: RETURN_URL,
      version: '2009-01-09',
      callerReferenceSender: ref('ps'),
    };
    const noAmount = await decideCbui(
      sign({ ...base, pipelineName: 'SetupPrepaid', callerReferenceFunding: ref('pf') }),
    );
    assert.deepEqual(
      [noAmount.params.status, noAmount.params.callerReferenceSender],
      ['CE', base.callerReferenceSender],
    );
    assert.match(noAmount.params.errorMessage, /fundingAmount is required/);
    assertSigned(noAmount);
    const badPipeline = await decideCbui(sign({ ...base, pipelineName: 'Recurring' }));
    assert.equal(badPipeline.params.status, 'CE');
    // Without the decision header the buyer goes straight back too.
    const response = await fetch(
      sign({ ...base, pipelineName: 'SetupPrepaid', callerReferenceFunding: ref('pf'), fundingAmount: '-1' }),
      { redirect: 'manual' },
    );
    assert.equal(response.status, 302);
    assert.equal(new URL(response.headers.get('location')!).searchParams.get('status'), 'CE');
  });

  it('keeps the merchant’s own returnURL query and signs it along', async () => {
    const returnUrl = 'http://127.0.0.1:9/shop/return?order=42&note=a%20b';
    const redirect = await decideCbui(
      cbuiUrl(sb, { pipeline: 'SingleUse', callerReference: ref('su'), transactionAmount: usd('1.00') }, { returnUrl }),
    );
    assert.equal(redirect.location.origin + redirect.location.pathname, 'http://127.0.0.1:9/shop/return');
    assert.deepEqual([redirect.params.order, redirect.params.note], ['42', 'a b']);
    assert.ok(
      verifyCallbackSignature(redirect.params, {
        httpMethod: 'GET',
        urlEndPoint: 'http://127.0.0.1:9/shop/return',
        certificatePem,
      }),
    );
  });

  it('refuses a bad merchant signature or an unknown callerKey with a 400 page, never a redirect', async () => {
    const good = cbuiUrl(sb, { pipeline: 'SingleUse', callerReference: ref('su'), transactionAmount: usd('1.00') });
    for (const bad of [
      good.replace('transactionAmount=1.00', 'transactionAmount=9.00'),
      good.replace(DEV_ACCESS_KEY_ID, 'AKIANOBODY0000000000'),
      good.replace(/&signature=[^&]+/, ''),
    ]) {
      const response = await fetch(bad, { headers: { 'x-sandbox-decision': 'approve' }, redirect: 'manual' });
      assert.equal(response.status, 400);
      assert.equal(response.headers.get('location'), null);
      assert.match(response.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await response.text(), /could not process/);
    }
    const wrongHeader = await fetch(good, { headers: { 'x-sandbox-decision': 'maybe' }, redirect: 'manual' });
    assert.equal(wrongHeader.status, 400);
  });

  it('accepts URLs signed for FPS’s own CBUI host, as boto’s make_url signs them', async () => {
    const params = cbuiParams({
      endpoint: 'https://authorize.payments-sandbox.amazon.com/cobranded-ui/actions/start',
      callerKey: DEV_ACCESS_KEY_ID,
      secretKey: DEV_SECRET_KEY,
      returnUrl: RETURN_URL,
      pipeline: 'SingleUse',
      callerReference: ref('boto'),
      transactionAmount: usd('2.00'),
    } satisfies CbuiRequest);
    const signed = signCbuiParams(
      params,
      { host: 'authorize.payments-sandbox.amazon.com', path: CBUI_PATH },
      DEV_SECRET_KEY,
    );
    const redirect = await decideCbui(`${sb.url}${CBUI_PATH}?${toQueryString(signed)}`);
    assert.equal(redirect.params.status, 'SC');
  });

  it('shows a page with Approve and Cancel; its form approves like the header does', async () => {
    const callerReference = ref('page');
    const start = cbuiUrl(
      sb,
      { pipeline: 'SingleUse', callerReference, transactionAmount: usd('7.25') },
      { paymentReason: 'Ebook <Deluxe>' },
    );
    const response = await fetch(start);
    assert.equal(response.status, 200);
    const page = await response.text();
    assert.match(page, /<title>Amazon Payments \(FPS sandbox\)<\/title>/);
    assert.match(page, /<button id="approve"[^>]*>Approve<\/button>/);
    assert.match(page, /<button id="cancel"[^>]*>Cancel<\/button>/);
    assert.match(page, /USD 7\.25/);
    assert.match(page, /SingleUse/);
    assert.match(page, /Ebook &lt;Deluxe&gt;/);
    assert.match(page, new RegExp(DEV_ACCESS_KEY_ID));
    const requestId = /name="requestId" value="([0-9A-Z]+)"/.exec(page)?.[1];
    assert.ok(requestId);

    const decide = (decision: string, id = requestId) =>
      fetch(`${sb.url}/cobranded-ui/actions/decide`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ requestId: id, decision }),
        redirect: 'manual',
      });
    const cancelled = await decide('abort');
    assert.equal(cancelled.status, 302);
    assert.equal(new URL(cancelled.headers.get('location')!).searchParams.get('status'), 'A');
    const approved = await decide('approve');
    assert.equal(approved.status, 302);
    const location = new URL(approved.headers.get('location')!);
    assert.equal(location.searchParams.get('status'), 'SC');
    const viaHeader = await decideCbui(start);
    assert.equal(viaHeader.params.tokenID, location.searchParams.get('tokenID'));
    assert.equal((await decide('approve', 'UNKNOWNREQUEST')).status, 400);
  });

  it('validityExpiry: an expired prepaid instrument refuses funding and payments (InstrumentExpired)', async () => {
    const sender = ref('ps');
    const params = {
      ...cbuiParams({
        endpoint: `${sb.url}${CBUI_PATH}`,
        callerKey: DEV_ACCESS_KEY_ID,
        secretKey: DEV_SECRET_KEY,
        returnUrl: RETURN_URL,
        pipeline: 'SetupPrepaid',
        callerReferenceSender: sender,
        callerReferenceFunding: `${sender}:f`,
        fundingAmount: usd('10.00'),
      }),
      validityExpiry: String(Math.floor(Date.now() / 1000) + 2),
    };
    const signed = signCbuiParams(params, { host: new URL(sb.url).host, path: CBUI_PATH }, DEV_SECRET_KEY);
    const { params: returned } = await decideCbui(`${sb.url}${CBUI_PATH}?${toQueryString(signed)}`);
    assert.equal(returned.status, 'SC');
    const fund = () =>
      sb.call('FundPrepaid', {
        prepaidInstrumentId: returned.prepaidInstrumentID,
        senderTokenId: returned.fundingTokenID,
        fundingAmount: usd('1.00'),
        callerReference: ref('fund'),
      });
    assert.equal((await fund()).transactionStatus, 'Success');
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    await expectFpsError(fund(), 'InstrumentExpired');
    await expectFpsError(
      sb.call('Pay', {
        senderTokenId: returned.prepaidSenderTokenID,
        transactionAmount: usd('1.00'),
        callerReference: ref('pay'),
      }),
      'InstrumentExpired',
    );
    // The balance stays readable.
    assert.deepEqual(
      (await sb.call('GetPrepaidBalance', { prepaidInstrumentId: returned.prepaidInstrumentID })).availableBalance,
      usd('1.00'),
    );
  });
});
