// Fault injection and the admin views against a real sandbox process: injected errors, delays
// and dropped answers (work done, answer lost, retry returns the same transaction), faults from
// SANDBOX_FAULTS at start, and the JSON/HTML inspection endpoints.
import assert from 'node:assert/strict';
import { FpsError } from '../../fps/errors';
import { expectFpsError, fundedPrepaid, ref, startSandbox, usd, type TestSandbox } from './support';

describe('sandbox fault injection and admin views (real process)', function () {
  this.timeout(30_000);
  let sb: TestSandbox;

  before(async () => {
    sb = await startSandbox({ name: 'faults' });
  });
  afterEach(async () => {
    await fetch(`${sb.url}/admin/faults`, { method: 'DELETE' });
  });
  after(async () => sb?.stop());

  const addFault = (fault: unknown) =>
    sb.admin('/admin/faults', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(fault),
    });
  const available = async (prepaidInstrumentId: string) =>
    (await sb.call('GetPrepaidBalance', { prepaidInstrumentId })).availableBalance.amount;

  it('error faults answer the given code (503/500) for the given actions, `count` times', async () => {
    const prepaid = await fundedPrepaid(sb, usd('20.00'));
    const added = await addFault({ kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['Pay'] });
    assert.equal(added.faults.length, 1);
    const request = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('1.00'),
      callerReference: ref('pay'),
    };
    const first = await expectFpsError(sb.call('Pay', request), 'ServiceUnavailable');
    assert.deepEqual([first.httpStatus, first.retryable], [503, true]);
    assert.equal(await available(prepaid.instrumentId), 2000, 'other actions are not hit, and nothing moved');
    assert.equal((await sb.admin('/admin/faults')).faults[0].count, 1);
    await expectFpsError(sb.call('Pay', request), 'ServiceUnavailable');
    assert.equal((await sb.call('Pay', request)).transactionStatus, 'Success');
    assert.deepEqual((await sb.admin('/admin/faults')).faults, []);

    await addFault([
      { kind: 'error', code: 'InternalError' },
      { kind: 'error', code: 'Throttling' },
    ]);
    assert.equal((await expectFpsError(sb.call('GetOutstandingDebtBalance', {}), 'InternalError')).httpStatus, 500);
    assert.equal((await expectFpsError(sb.call('GetOutstandingDebtBalance', {}), 'Throttling')).httpStatus, 503);
    await sb.call('GetOutstandingDebtBalance', {});
  });

  it('drop: the payment is made, the answer never comes; the retry returns the same TransactionId and one charge', async () => {
    const prepaid = await fundedPrepaid(sb, usd('20.00'));
    await addFault({ kind: 'drop', count: 1, actions: ['Pay'] });
    const callerReference = ref('pay');
    const request = { senderTokenId: prepaid.senderTokenId, transactionAmount: usd('7.00'), callerReference };
    const lost = await sb
      .client({ timeoutMs: 2_000 })
      .call('Pay', request)
      .then(
        () => assert.fail('the answer should have been dropped'),
        (e: unknown) => e,
      );
    assert.ok(
      lost instanceof FpsError && lost.retryable && ['NetworkError', 'Timeout'].includes(lost.code),
      String(lost),
    );
    assert.equal(await available(prepaid.instrumentId), 1300, 'the money moved');
    const [charge] = (await sb.admin(`/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`))
      .transactions;
    const retried = await sb.call('Pay', request);
    assert.equal(retried.transactionId, charge.id);
    assert.equal(retried.transactionStatus, 'Success');
    assert.equal(await available(prepaid.instrumentId), 1300);
    assert.equal(
      (await sb.admin(`/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`)).transactions
        .length,
      1,
    );
  });

  it('delay: the answer comes late (a client with a short timeout gives up), the work is done once', async () => {
    const prepaid = await fundedPrepaid(sb, usd('20.00'));
    await addFault({ kind: 'delay', ms: 1_200, count: 1, actions: ['Pay'] });
    const request = {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('2.00'),
      callerReference: ref('pay'),
    };
    await expectFpsError(sb.client({ timeoutMs: 300 }).call('Pay', request), 'Timeout');
    const started = Date.now();
    await addFault({ kind: 'delay', ms: 500 });
    const late = await sb.call('Pay', request);
    assert.ok(Date.now() - started >= 500);
    assert.equal(late.transactionStatus, 'Success');
    assert.equal(await available(prepaid.instrumentId), 1800);
  });

  it('rejects malformed faults with a problem document', async () => {
    for (const bad of [
      { kind: 'explode' },
      { kind: 'delay' },
      { kind: 'error', actions: ['Pray'] },
      { kind: 'drop', count: 0 },
      { kind: 'drop', extra: 1 },
    ]) {
      const response = await fetch(`${sb.url}/admin/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(bad),
      });
      assert.equal(response.status, 400, JSON.stringify(bad));
      assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    }
    const ipn = await fetch(`${sb.url}/admin/ipn`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'ftp://x' }),
    });
    assert.equal(ipn.status, 400);
  });

  it('SANDBOX_FAULTS queues faults at start; SIGTERM lets the request in flight finish, then exits 0', async () => {
    const other = await startSandbox({
      name: 'faults-env',
      env: {
        SANDBOX_FAULTS: JSON.stringify([
          { kind: 'error', code: 'Throttling', count: 1, actions: ['GetOutstandingDebtBalance'] },
          { kind: 'delay', ms: 1_000, count: 1, actions: ['GetDebtBalance'] },
        ]),
      },
    });
    try {
      assert.equal((await other.admin('/admin/faults')).faults.length, 2);
      await expectFpsError(other.call('GetOutstandingDebtBalance', {}), 'Throttling');
      await other.call('GetOutstandingDebtBalance', {});

      const slow = other.call('GetDebtBalance', { creditInstrumentId: 'NO-SUCH-INSTRUMENT' }).then(
        () => 'answered',
        (e: FpsError) => e.code,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      const exit = await other.service.stop('SIGTERM');
      assert.equal(await slow, 'InvalidParams', 'the request in flight got its answer');
      assert.deepEqual([exit.code, exit.signal], [0, null]);
      assert.match(other.service.tail(5), /sandbox stopped/);
      await expectFpsError(other.call('GetOutstandingDebtBalance', {}), 'NetworkError');
    } finally {
      await other.stop();
    }
  });

  it('admin views: transactions, instruments, tokens and summary in minor units plus decimals; an HTML ledger', async () => {
    const prepaid = await fundedPrepaid(sb, usd('30.00'));
    const paid = await sb.call('Pay', {
      senderTokenId: prepaid.senderTokenId,
      transactionAmount: usd('12.34'),
      callerReference: ref('pay'),
    });
    const tx = await sb.admin(`/admin/transactions/${paid.transactionId}`);
    assert.deepEqual(tx.amount, { amount: 1234, currency: 'USD', value: '12.34' });
    assert.deepEqual(
      [tx.operation, tx.status, tx.instrumentId, tx.tokenId],
      ['PAY', 'Success', prepaid.instrumentId, prepaid.senderTokenId],
    );
    const list = await sb.admin(`/admin/transactions?instrumentId=${prepaid.instrumentId}&limit=1`);
    assert.equal(list.transactions.length, 1);
    assert.equal(list.transactions[0].id, paid.transactionId);
    const instrument = await sb.admin(`/admin/prepaid/${prepaid.instrumentId}`);
    assert.deepEqual(instrument.balance, { amount: 1766, currency: 'USD', value: '17.66' });
    assert.equal(instrument.transactions.length, 2);
    assert.equal((await sb.admin(`/admin/tokens/${prepaid.fundingTokenId}`)).type, 'PrepaidFunding');
    const summary = await sb.admin('/admin/summary');
    assert.ok(
      summary.transactions.some(
        (row: { operation: string; count: number }) => row.operation === 'PAY' && row.count > 0,
      ),
    );
    assert.ok(summary.prepaid[0].balance.value);
    for (const missing of [
      '/admin/transactions/NOPE',
      '/admin/prepaid/NOPE',
      '/admin/credit/NOPE',
      '/admin/tokens/NOPE',
      '/admin/nothing',
    ]) {
      assert.equal((await fetch(`${sb.url}${missing}`)).status, 404, missing);
    }
    const page = await fetch(`${sb.url}/admin`);
    assert.equal(page.status, 200);
    const htmlText = await page.text();
    assert.match(htmlText, /FPS sandbox ledger/);
    assert.ok(htmlText.includes(paid.transactionId.slice(0, 12)));
  });
});
