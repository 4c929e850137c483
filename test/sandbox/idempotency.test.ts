// CallerReference idempotency and durability against a real sandbox process: a repeated request
// returns the original transaction and moves nothing; changed parameters are a DuplicateRequest;
// balances, transactions, Pending work and the certificate survive restarts and SIGKILL.
import assert from 'node:assert/strict';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { signQueryParams, toQueryString } from '../../fps/signature';
import { parseResponseXml } from '../../fps/xml';
import {
  approvePostpaid,
  approveSingleUse,
  eventually,
  expectFpsError,
  fundedPrepaid,
  ref,
  startSandbox,
  usd,
  type TestSandbox,
} from './support';

describe('sandbox CallerReference idempotency and restarts (real process)', function () {
  this.timeout(40_000);
  let sb: TestSandbox;

  before(async () => {
    sb = await startSandbox({ name: 'idempotency' });
  });
  after(async () => sb?.stop());

  const available = async (prepaidInstrumentId: string) =>
    (await sb.call('GetPrepaidBalance', { prepaidInstrumentId })).availableBalance.amount;
  const charges = async (callerReference: string) =>
    (await sb.admin(`/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`)).transactions;

  it('a repeated Pay returns the original TransactionId and charges once', async () => {
    const prepaid = await fundedPrepaid(sb, usd('50.00'));
    const callerReference = ref('pay');
    const request = { senderTokenId: prepaid.senderTokenId, transactionAmount: usd('12.50'), callerReference };
    const first = await sb.call('Pay', request);
    const second = await sb.call('Pay', request);
    const viaGet = await sb.client({ httpMethod: 'GET', signatureMethod: 'HmacSHA1' }).call('Pay', request);
    assert.equal(second.transactionId, first.transactionId);
    assert.equal(viaGet.transactionId, first.transactionId);
    assert.equal(second.transactionStatus, 'Success');
    assert.notEqual(second.requestId, first.requestId);
    assert.equal(await available(prepaid.instrumentId), 5000 - 1250);
    assert.equal((await charges(callerReference)).length, 1);
  });

  it('the same CallerReference with other parameters, or for another action, is a DuplicateRequest', async () => {
    const prepaid = await fundedPrepaid(sb, usd('50.00'));
    const callerReference = ref('pay');
    await sb.call('Pay', { senderTokenId: prepaid.senderTokenId, transactionAmount: usd('10.00'), callerReference });
    const error = await expectFpsError(
      sb.call('Pay', { senderTokenId: prepaid.senderTokenId, transactionAmount: usd('10.01'), callerReference }),
      'DuplicateRequest',
    );
    assert.equal(error.httpStatus, 400);
    await expectFpsError(
      sb.call('FundPrepaid', {
        prepaidInstrumentId: prepaid.instrumentId,
        senderTokenId: prepaid.fundingTokenId,
        fundingAmount: usd('10.00'),
        callerReference,
      }),
      'DuplicateRequest',
    );
    await expectFpsError(
      sb.call('Reserve', { senderTokenId: prepaid.senderTokenId, transactionAmount: usd('10.00'), callerReference }),
      'DuplicateRequest',
    );
    assert.equal(await available(prepaid.instrumentId), 4000);
  });

  it('parameters compare by value: "5.5" and "5.50", parameter order, auth fields do not matter', async () => {
    const prepaid = await fundedPrepaid(sb, usd('50.00'));
    const callerReference = ref('pay');
    const host = new URL(sb.url).host;
    const send = async (value: string, extra: Record<string, string>) => {
      const params = signQueryParams(
        {
          Action: 'Pay',
          AWSAccessKeyId: DEV_ACCESS_KEY_ID,
          Timestamp: new Date().toISOString(),
          Version: '2010-08-28',
          SenderTokenId: prepaid.senderTokenId,
          'TransactionAmount.Value': value,
          'TransactionAmount.CurrencyCode': 'USD',
          CallerReference: callerReference,
          ...extra,
        },
        { method: 'GET', host, path: '/' },
        DEV_SECRET_KEY,
        'HmacSHA1',
      );
      const response = await fetch(`${sb.url}/?${toQueryString(params)}`);
      return parseResponseXml('Pay', await response.text(), response.status);
    };
    const first = await send('5.5', {});
    const second = await send('5.50', { ChargeFeeTo: 'Recipient' });
    assert.equal(second.transactionId, first.transactionId);
    assert.equal(await available(prepaid.instrumentId), 5000 - 550);
  });

  it('a replay reports the CURRENT status: Pending, then Success, same id; Failure stays Failure', async () => {
    const prepaid = await fundedPrepaid(sb, usd('50.00'));
    const request = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('3.13'),
      callerReference: ref('pay'),
    };
    const pending = await sb.call('Pay', request);
    assert.equal(pending.transactionStatus, 'Pending');
    assert.equal((await sb.call('Pay', request)).transactionStatus, 'Pending');
    const resolved = await eventually(
      () => sb.call('Pay', request),
      (r) => r.transactionStatus === 'Success',
    );
    assert.equal(resolved.transactionId, pending.transactionId);
    assert.equal(await available(prepaid.instrumentId), 5000 - 313);

    const declined = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('3.52'),
      callerReference: ref('pay'),
    };
    const failure = await sb.call('Pay', declined);
    assert.deepEqual(await sb.call('Pay', declined).then((r) => [r.transactionId, r.transactionStatus]), [
      failure.transactionId,
      'Failure',
    ]);
  });

  it('replays win over token state: a used single-use token or a cancelled one returns the original', async () => {
    const { tokenId } = await approveSingleUse(sb, usd('9.00'));
    const request = { senderTokenId: tokenId, transactionAmount: usd('9.00'), callerReference: ref('pay') };
    const first = await sb.call('Pay', request);
    assert.equal((await sb.call('Pay', request)).transactionId, first.transactionId);
    await sb.call('CancelToken', { tokenId });
    assert.equal((await sb.call('Pay', request)).transactionId, first.transactionId);
  });

  it('Refund, FundPrepaid, SettleDebt and WriteOffDebt are idempotent too', async () => {
    const prepaid = await fundedPrepaid(sb, usd('10.00'), usd('100.00'));
    const fund = {
      prepaidInstrumentId: prepaid.instrumentId,
      senderTokenId: prepaid.fundingTokenId,
      fundingAmount: usd('20.00'),
      callerReference: ref('fund'),
    };
    assert.equal(
      (await sb.call('FundPrepaid', fund)).transactionId,
      (await sb.call('FundPrepaid', fund)).transactionId,
    );
    assert.equal(await available(prepaid.instrumentId), 3000);

    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('10.00'),
      callerReference: ref('pay'),
    });
    const refund = { transactionId: paid.transactionId, refundAmount: usd('4.00'), callerReference: ref('refund') };
    assert.equal((await sb.call('Refund', refund)).transactionId, (await sb.call('Refund', refund)).transactionId);
    assert.equal(await available(prepaid.instrumentId), 2400);
    await expectFpsError(sb.call('Refund', { ...refund, refundAmount: usd('5.00') }), 'DuplicateRequest');

    const credit = await approvePostpaid(sb, usd('100.00'), usd('100.00'));
    await sb.call('Pay', {
      senderTokenId: credit.senderTokenId,
      transactionAmount: usd('60.00'),
      callerReference: ref('pay'),
    });
    const settle = {
      creditInstrumentId: credit.instrumentId,
      senderTokenId: credit.settlementTokenId,
      settlementAmount: usd('20.00'),
      callerReference: ref('settle'),
    };
    assert.equal(
      (await sb.call('SettleDebt', settle)).transactionId,
      (await sb.call('SettleDebt', settle)).transactionId,
    );
    const writeOff = {
      creditInstrumentId: credit.instrumentId,
      adjustmentAmount: usd('15.00'),
      callerReference: ref('writeoff'),
    };
    assert.equal(
      (await sb.call('WriteOffDebt', writeOff)).transactionId,
      (await sb.call('WriteOffDebt', writeOff)).transactionId,
    );
    assert.deepEqual(
      (await sb.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId })).availableBalance,
      usd('25.00'),
    );
  });

  it('a restart (SIGTERM) and a crash (SIGKILL) keep balances, transactions, Pending work and the certificate', async () => {
    const certificate = await (await fetch(`${sb.url}/certs/PKICert.pem`)).text();
    const prepaid = await fundedPrepaid(sb, usd('80.00'));
    const credit = await approvePostpaid(sb, usd('100.00'), usd('100.00'));
    const payRequest = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('30.00'),
      callerReference: ref('pay'),
    };
    const paid = await sb.call('Pay', payRequest);
    await sb.call('Pay', {
      senderTokenId: credit.senderTokenId,
      transactionAmount: usd('45.00'),
      callerReference: ref('pay'),
    });
    const summary = await sb.admin('/admin/summary');

    await sb.service.restart();
    assert.equal(await available(prepaid.instrumentId), 5000);
    assert.deepEqual(
      (await sb.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId })).availableBalance,
      usd('45.00'),
    );
    assert.equal(
      (await sb.call('GetTransactionStatus', { transactionId: paid.transactionId })).transactionStatus,
      'Success',
    );
    assert.equal((await sb.call('Pay', payRequest)).transactionId, paid.transactionId);
    assert.deepEqual(await sb.admin('/admin/summary'), summary);
    assert.equal(await (await fetch(`${sb.url}/certs/PKICert.pem`)).text(), certificate);

    // Pending when the process dies: resolved on the next start, money moved once.
    const pendingRequest = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('1.13'),
      callerReference: ref('pay'),
    };
    const pending = await sb.call('Pay', pendingRequest);
    assert.equal(pending.transactionStatus, 'Pending');
    await sb.service.kill9();
    await sb.service.restart();
    await eventually(
      () => sb.call('GetTransactionStatus', { transactionId: pending.transactionId }),
      (s) => s.transactionStatus === 'Success',
    );
    assert.equal(await available(prepaid.instrumentId), 5000 - 113);
    assert.equal((await sb.call('Pay', pendingRequest)).transactionId, pending.transactionId);
    assert.equal((await charges(pendingRequest.callerReference)).length, 1);
  });
});
