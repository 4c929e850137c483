// Pending outcomes and IPNs against a real sandbox process and a loopback receiver: magic amounts
// .13/.14, retries with backoff until 200, signatures that verify, duplicates, every notification
// kind, and deliveries that survive a restart of the sandbox.
import assert from 'node:assert/strict';
import { verifyCallbackSignature } from '../../fps/callback-signature';
import { parseIpn } from '../../fps/ipn';
import {
  approvePostpaid,
  approveSingleUse,
  eventually,
  expectFpsError,
  fundedPrepaid,
  ipnReceiver,
  ref,
  startSandbox,
  usd,
  type TestSandbox,
} from './support';

describe('sandbox pending transactions and IPNs (real process)', function () {
  this.timeout(30_000);
  let sb: TestSandbox;
  let certificatePem: string;
  let receiver: Awaited<ReturnType<typeof ipnReceiver>>;

  before(async () => {
    sb = await startSandbox({ name: 'ipn' });
    certificatePem = await (await fetch(`${sb.url}/certs/PKICert.pem`)).text();
  });
  beforeEach(async () => {
    receiver = await ipnReceiver();
    await sb.admin('/admin/ipn', postJson({ url: receiver.url, enabled: true, duplicate: 0, delayMs: 0 }));
  });
  afterEach(async () => receiver.close());
  after(async () => sb?.stop());

  const postJson = (body: unknown): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const ipnsFor = (id: string) =>
    receiver.received.filter((r) => r.params.transactionId === id || r.params.tokenId === id);
  const status = async (transactionId: string) =>
    (await sb.call('GetTransactionStatus', { transactionId })).transactionStatus;
  const balance = async (prepaidInstrumentId: string) => sb.call('GetPrepaidBalance', { prepaidInstrumentId });
  const verifies = (params: Record<string, string>) =>
    verifyCallbackSignature(params, { httpMethod: 'POST', urlEndPoint: receiver.url, certificatePem });

  it('.13: Pending, then Success and a signed SUCCESS IPN retried until the receiver answers 200', async () => {
    await receiver.close();
    receiver = await ipnReceiver([500, 500]);
    await sb.admin('/admin/ipn', postJson({ url: receiver.url }));
    const prepaid = await fundedPrepaid(sb, usd('20.00'));
    const callerReference = ref('pay');
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('5.13'),
      callerReference,
    });
    assert.equal(paid.transactionStatus, 'Pending');
    // Pending money is held from spending but has not moved.
    assert.equal((await balance(prepaid.instrumentId)).availableBalance.amount, 2000 - 513);
    assert.equal((await sb.admin(`/admin/prepaid/${prepaid.instrumentId}`)).balance.amount, 2000);

    const attempts = await receiver.waitFor(
      (all) => all.filter((r) => r.params.transactionId === paid.transactionId).length >= 3,
    );
    const mine = attempts.filter((r) => r.params.transactionId === paid.transactionId);
    assert.deepEqual(
      mine.map((r) => r.answered),
      [500, 500, 200],
    );
    assert.ok(mine[1].at - mine[0].at >= 80, 'backoff before the 2nd attempt');
    assert.ok(mine[2].at - mine[1].at >= 160, 'longer backoff before the 3rd');
    assert.equal(new Set(mine.map((r) => r.body)).size, 1, 'each retry sends the same notification');
    const ipn = mine[2].params;
    assert.equal(mine[2].path, '/fps/ipn');
    assert.ok(verifies(ipn), 'IPN signature verifies with the served certificate');
    assert.ok(!verifies({ ...ipn, transactionAmount: 'USD 9.13' }));
    const parsed = parseIpn(ipn);
    assert.deepEqual(
      { ...parsed, transactionDate: 0 },
      {
        notificationType: 'TransactionStatus',
        transactionId: paid.transactionId,
        transactionStatus: 'Success',
        statusCode: 'Success',
        statusMessage: 'The transaction was successful and the payment instrument was charged.',
        callerReference,
        operation: 'PAY',
        transactionAmount: usd('5.13'),
        transactionDate: 0,
        paymentMethod: 'CC',
        tokenId: prepaid.senderTokenId,
      },
    );
    assert.equal(ipn.transactionStatus, 'SUCCESS');
    assert.equal(await status(paid.transactionId), 'Success');
    assert.equal((await balance(prepaid.instrumentId)).availableBalance.amount, 2000 - 513);
    assert.equal((await sb.admin(`/admin/prepaid/${prepaid.instrumentId}`)).balance.amount, 2000 - 513);

    // VerifySignature agrees, given the body exactly as received.
    assert.equal(
      (await sb.call('VerifySignature', { urlEndPoint: receiver.url, httpParameters: mine[2].body }))
        .verificationStatus,
      'Success',
    );
    const { deliveries } = await sb.admin(`/admin/ipn-deliveries?transactionId=${paid.transactionId}`);
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0].status, 'delivered');
    assert.equal(deliveries[0].attempts, 3);
    assert.deepEqual(
      deliveries[0].attemptLog.map((a: { httpStatus: number }) => a.httpStatus),
      [500, 500, 200],
    );
  });

  it('.14: Pending, then Failure with a FAILURE IPN, and no money moves', async () => {
    const prepaid = await fundedPrepaid(sb, usd('20.00'));
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('3.14'),
      callerReference: ref('pay'),
    });
    assert.equal(paid.transactionStatus, 'Pending');
    const [ipn] = await receiver
      .waitFor(() => ipnsFor(paid.transactionId).length >= 1)
      .then(() => ipnsFor(paid.transactionId));
    assert.equal(ipn.params.transactionStatus, 'FAILURE');
    assert.equal(ipn.params.statusCode, 'PaymentMethodDeclined');
    assert.ok(verifies(ipn.params));
    assert.equal(await status(paid.transactionId), 'Failure');
    assert.deepEqual((await balance(prepaid.instrumentId)).availableBalance, usd('20.00'));
    const view = await sb.admin(`/admin/transactions/${paid.transactionId}`);
    assert.equal(view.settledAmount.amount, 0);
  });

  it('Pending FundPrepaid and SettleDebt show as pending balances until they succeed', async () => {
    const prepaid = await fundedPrepaid(sb, usd('10.00'), usd('100.00'));
    const funding = await sb.call('FundPrepaid', {
      prepaidInstrumentId: prepaid.instrumentId,
      senderTokenId: prepaid.fundingTokenId,
      fundingAmount: usd('20.13'),
      callerReference: ref('fund'),
    });
    assert.equal(funding.transactionStatus, 'Pending');
    const pendingBalance = await balance(prepaid.instrumentId);
    assert.deepEqual(
      [pendingBalance.availableBalance.amount, pendingBalance.prepaidFundingBalance.amount],
      [1000, 2013],
    );
    await eventually(
      () => status(funding.transactionId),
      (s) => s === 'Success',
    );
    const funded = await balance(prepaid.instrumentId);
    assert.deepEqual([funded.availableBalance.amount, funded.prepaidFundingBalance.amount], [3013, 0]);
    await receiver.waitFor(() => ipnsFor(funding.transactionId).length > 0);
    assert.equal(ipnsFor(funding.transactionId)[0].params.operation, 'FUND_PREPAID');

    const credit = await approvePostpaid(sb, usd('100.00'), usd('1000.00'));
    await sb.call('Pay', {
      senderTokenId: credit.senderTokenId,
      transactionAmount: usd('50.00'),
      callerReference: ref('pay'),
    });
    const settling = await sb.call('SettleDebt', {
      creditInstrumentId: credit.instrumentId,
      senderTokenId: credit.settlementTokenId,
      settlementAmount: usd('30.13'),
      callerReference: ref('settle'),
    });
    assert.equal(settling.transactionStatus, 'Pending');
    const pendingDebt = await sb.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId });
    assert.deepEqual([pendingDebt.availableBalance.amount, pendingDebt.pendingOutBalance.amount], [5000, 3013]);
    // What is already being settled cannot be settled or written off twice.
    await expectFpsError(
      sb.call('WriteOffDebt', {
        creditInstrumentId: credit.instrumentId,
        adjustmentAmount: usd('20.00'),
        callerReference: ref('writeoff'),
      }),
      'SettleAmountGreaterThanDebt',
    );
    await eventually(
      () => status(settling.transactionId),
      (s) => s === 'Success',
    );
    const settledDebt = await sb.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId });
    assert.deepEqual([settledDebt.availableBalance.amount, settledDebt.pendingOutBalance.amount], [1987, 0]);
    const [ipn] = await receiver
      .waitFor(() => ipnsFor(settling.transactionId).length > 0)
      .then(() => ipnsFor(settling.transactionId));
    assert.equal(ipn.params.operation, 'SETTLE_DEBT');
  });

  it('Reserve .13 becomes Reserved; Settle and Cancel are announced too', async () => {
    const first = await approveSingleUse(sb, usd('9.13'));
    const reserved = await sb.call('Reserve', {
      senderTokenId: first.tokenId,
      transactionAmount: usd('9.13'),
      callerReference: ref('reserve'),
    });
    assert.equal(reserved.transactionStatus, 'Pending');
    await receiver.waitFor(() => ipnsFor(reserved.transactionId).length >= 1);
    assert.deepEqual(
      [
        ipnsFor(reserved.transactionId)[0].params.transactionStatus,
        ipnsFor(reserved.transactionId)[0].params.operation,
      ],
      ['RESERVED', 'RESERVE'],
    );
    await sb.call('Settle', { reserveTransactionId: reserved.transactionId, transactionAmount: usd('9.00') });
    await receiver.waitFor(() => ipnsFor(reserved.transactionId).length >= 2);
    const settled = ipnsFor(reserved.transactionId)[1].params;
    assert.deepEqual(
      [settled.transactionStatus, settled.operation, settled.transactionAmount],
      ['SUCCESS', 'SETTLE', 'USD 9.00'],
    );

    const second = await approveSingleUse(sb, usd('4.00'));
    const held = await sb.call('Reserve', {
      senderTokenId: second.tokenId,
      transactionAmount: usd('4.00'),
      callerReference: ref('reserve'),
    });
    await sb.call('Cancel', { transactionId: held.transactionId });
    const [cancelled] = await receiver
      .waitFor(() => ipnsFor(held.transactionId).length >= 1)
      .then(() => ipnsFor(held.transactionId));
    assert.deepEqual([cancelled.params.transactionStatus, cancelled.params.operation], ['CANCELLED', 'RESERVE']);
    assert.ok(verifies(cancelled.params));
  });

  it('a Pending payment cancelled before it resolves stays Cancelled and moves nothing', async () => {
    const prepaid = await fundedPrepaid(sb, usd('10.00'));
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('2.13'),
      callerReference: ref('pay'),
    });
    assert.equal((await sb.call('Cancel', { transactionId: paid.transactionId })).transactionStatus, 'Cancelled');
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(await status(paid.transactionId), 'Cancelled');
    assert.deepEqual((await balance(prepaid.instrumentId)).availableBalance, usd('10.00'));
    assert.deepEqual(
      ipnsFor(paid.transactionId).map((r) => r.params.transactionStatus),
      ['CANCELLED'],
    );
  });

  it('CancelToken sends a signed TokenCancellation IPN', async () => {
    const { tokenId, callerReference } = await approveSingleUse(sb, usd('1.00'));
    await sb.call('CancelToken', { tokenId, reasonText: 'fraud suspected' });
    const [ipn] = await receiver.waitFor(() => ipnsFor(tokenId).length >= 1).then(() => ipnsFor(tokenId));
    assert.deepEqual(parseIpn(ipn.params), {
      notificationType: 'TokenCancellation',
      tokenId,
      callerReference,
      tokenType: 'SingleUse',
      statusCode: 'TokenCancelled',
      statusMessage: 'fraud suspected',
    });
    assert.ok(verifies(ipn.params));
  });

  it('duplicate and delayMs controls: each IPN twice, after the delay', async () => {
    await sb.admin('/admin/ipn', postJson({ duplicate: 1, delayMs: 700 }));
    const prepaid = await fundedPrepaid(sb, usd('10.00'));
    const started = Date.now();
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('1.13'),
      callerReference: ref('pay'),
    });
    await receiver.waitFor(() => ipnsFor(paid.transactionId).length >= 2);
    const copies = ipnsFor(paid.transactionId);
    assert.equal(copies[0].body, copies[1].body);
    assert.ok(copies[0].at - started >= 300 + 700 - 50, `delayed (${copies[0].at - started} ms)`);
    const settings = await sb.admin('/admin/ipn');
    assert.deepEqual(
      [settings.url, settings.enabled, settings.duplicate, settings.delayMs],
      [receiver.url, true, 1, 700],
    );
  });

  it('disabled IPNs record nothing; pending deliveries survive a restart and resume', async () => {
    await sb.admin('/admin/ipn', postJson({ enabled: false }));
    const prepaid = await fundedPrepaid(sb, usd('10.00'));
    const quiet = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('1.13'),
      callerReference: ref('pay'),
    });
    await eventually(
      () => status(quiet.transactionId),
      (s) => s === 'Success',
    );
    assert.equal((await sb.admin(`/admin/ipn-deliveries?transactionId=${quiet.transactionId}`)).deliveries.length, 0);

    // A receiver that refuses everything for now.
    await receiver.close();
    receiver = await ipnReceiver(Array(1000).fill(503));
    await sb.admin('/admin/ipn', postJson({ url: receiver.url, enabled: true }));
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('2.13'),
      callerReference: ref('pay'),
    });
    await receiver.waitFor(() => ipnsFor(paid.transactionId).length >= 2);
    await sb.service.restart();
    const before = ipnsFor(paid.transactionId).length;
    // After the restart the delivery is retried from the database (IPN settings are back to the
    // environment's — disabled — but what was recorded is still delivered).
    await receiver.waitFor(() => ipnsFor(paid.transactionId).length > before);
    const { deliveries } = await sb.admin(`/admin/ipn-deliveries?transactionId=${paid.transactionId}`);
    assert.equal(deliveries[0].status, 'pending');
    assert.ok(deliveries[0].attempts >= 2);
    assert.equal((await sb.admin('/admin/ipn')).enabled, false);
  });
});
