// Full lifecycles of the three instrument kinds against a real Temporal server, a real worker and
// the sandbox as its own process, checking the sandbox ledger after each step. Their histories are
// saved for the replay test.
import assert from 'node:assert/strict';
import { callerReferenceFor } from '../../fps/caller-reference';
import {
  captureUpdate,
  closeUpdate,
  fundUpdate,
  purchaseUpdate,
  refundUpdate,
  settleUpdate,
  UpdateRejection,
  voidUpdate,
  writeOffUpdate,
  type InstrumentSnapshot,
} from '../../workflows/messages';
import {
  authorize,
  expectRejection,
  FAST,
  saveHistory,
  snapshotOf,
  startInstrument,
  waitForSnapshot,
  waitForState,
  useInstrumentEnv,
} from './instrument-env';

describe('instrument lifecycles (Temporal + worker + sandbox process)', function () {
  this.timeout(60_000);
  const env = useInstrumentEnv('lifecycle');

  it('prepaid: authorize, fund, purchase, decline, refund, top up, deplete, close', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 5000,
      settings: FAST,
    });
    const id = input.instrumentId;
    assert.equal((await snapshotOf(handle)).state, 'awaitingAuthorization');
    // Purchase before funding: refused as an invalid state; nothing reaches FPS.
    await expectRejection(
      () =>
        handle.executeUpdate(purchaseUpdate, {
          args: [{ purchaseId: 'early', amount: 100, currency: 'USD' }],
          updateId: 'early',
        }),
      UpdateRejection.InvalidState,
      /awaitingAuthorization/,
    );
    assert.deepEqual(await env.sandbox.admin.transactions(`${id}:pay:early`), []);

    const ret = await authorize(env.sandbox, handle, input);
    assert.equal(ret.outcome, 'authorized');
    const tokens = (ret as { tokens: { prepaidInstrumentId: string } }).tokens;
    let snap = await waitForState(handle, 'active');
    assert.equal(snap.balance, 5000);
    let prepaid = await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId);
    assert.equal(prepaid.balance.amount, 5000, 'the initial FundPrepaid moved the money');
    const [funding] = await env.sandbox.admin.transactions(callerReferenceFor(id, 'fund', 'wf:initial'));
    assert.equal(funding.status, 'Success');

    const p1 = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p1', amount: 1200, currency: 'USD', description: 'an e-book' }],
      updateId: 'p1',
    });
    assert.equal(p1.outcome, 'approved');
    assert.equal(p1.transactionStatus, 'Success');
    assert.equal(p1.callerReference, `${id}:pay:p1`);
    assert.equal(p1.state, 'active');
    prepaid = await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId);
    assert.equal(prepaid.balance.amount, 3800);
    const charges = await env.sandbox.admin.transactions(`${id}:pay:p1`);
    assert.equal(charges.length, 1);
    assert.equal(charges[0].id, p1.transactionId);

    // More than the balance: refused before anything reaches FPS.
    await expectRejection(
      () =>
        handle.executeUpdate(purchaseUpdate, {
          args: [{ purchaseId: 'too-much', amount: 3801, currency: 'USD' }],
          updateId: 'too-much',
        }),
      UpdateRejection.LimitExceeded,
    );
    assert.deepEqual(await env.sandbox.admin.transactions(`${id}:pay:too-much`), []);
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'eur', amount: 100, currency: 'EUR' }] }),
      UpdateRejection.InvalidCurrency,
    );
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'frac', amount: 1.5, currency: 'USD' }] }),
      UpdateRejection.InvalidAmount,
    );
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'zero', amount: 0, currency: 'USD' }] }),
      UpdateRejection.InvalidAmount,
    );

    // Declined by the processor (magic .51): the purchase is declined, the balance untouched.
    const denied = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p-denied', amount: 151, currency: 'USD' }],
      updateId: 'p-denied',
    });
    assert.equal(denied.outcome, 'declined');
    assert.equal(denied.reason?.code, 'TransactionDenied');
    // Failure status (magic .52).
    const failed = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p-failed', amount: 252, currency: 'USD' }],
      updateId: 'p-failed',
    });
    assert.equal(failed.outcome, 'declined');
    assert.equal(failed.transactionStatus, 'Failure');
    snap = await snapshotOf(handle);
    assert.equal(snap.balance, 3800);
    assert.equal((await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId)).balance.amount, 3800);

    // Partial refund of p1: money back on the prepaid balance.
    const refund = await handle.executeUpdate(refundUpdate, {
      args: [{ refundId: 'r1', purchaseId: 'p1', amount: 200 }],
      updateId: 'r1',
    });
    assert.equal(refund.outcome, 'approved');
    assert.equal((await snapshotOf(handle)).balance, 4000);
    assert.equal((await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId)).balance.amount, 4000);
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r2', purchaseId: 'p1', amount: 1001 }] }),
      UpdateRejection.LimitExceeded,
    );
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r3', purchaseId: 'nope' }] }),
      UpdateRejection.UnknownPurchase,
    );

    // Top up within the instrument's funding limit (the SetupPrepaid fundingAmount).
    const topUp = await handle.executeUpdate(fundUpdate, {
      args: [{ fundingId: 'top-1', amount: 1000, currency: 'USD' }],
      updateId: 'top-1',
    });
    assert.equal(topUp.outcome, 'approved');
    assert.equal((await snapshotOf(handle)).balance, 5000);
    assert.equal((await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId)).balance.amount, 5000);

    // Spend it all: depleted, and purchases are refused by the balance limit (top up), not the state.
    const all = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p-all', amount: 5000, currency: 'USD' }],
      updateId: 'p-all',
    });
    assert.equal(all.outcome, 'approved');
    assert.equal(all.state, 'depleted');
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'p-more', amount: 1, currency: 'USD' }] }),
      UpdateRejection.LimitExceeded,
    );
    assert.equal((await env.sandbox.admin.prepaid(tokens.prepaidInstrumentId)).balance.amount, 0);

    const closed = await handle.executeUpdate(closeUpdate, { args: [{ reason: 'customer left' }] });
    assert.equal(closed.state, 'closed');
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'after', amount: 1, currency: 'USD' }] }),
      UpdateRejection.InvalidState,
    );
    // A retried purchase id still answers its first result after close.
    const again = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p1', amount: 1200, currency: 'USD' }],
      updateId: 'p1-retry',
    });
    assert.equal(again.transactionId, p1.transactionId);
    // Tokens are cancelled once closed.
    await waitForSnapshot(handle, (s) => s.final, 5_000);
    const senderToken = (ret as { tokens: { prepaidSenderTokenId: string } }).tokens.prepaidSenderTokenId;
    await waitUntil(
      async () => (await env.sandbox.admin.token(senderToken)).status === 'Inactive',
      'sender token cancelled',
    );

    snap = await snapshotOf(handle);
    assert.equal(snap.purchasesApproved, 2);
    assert.equal(snap.closeReason, 'customer left');
    await saveHistory(handle, 'prepaid-lifecycle');
  });

  it('postpaid: authorize, purchases, settle on demand and at the threshold, close; settle on a closed account is refused', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 10_000,
      globalAmountLimit: 100_000,
      settings: { ...FAST, settlementThresholdPercent: 80, settlementCycleMs: 3_600_000 },
    });
    const id = input.instrumentId;
    const ret = await authorize(env.sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');

    const p1 = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p1', amount: 2500, currency: 'USD' }],
      updateId: 'p1',
    });
    assert.equal(p1.outcome, 'approved');
    assert.equal((await snapshotOf(handle)).debt, 2500);
    assert.equal((await env.sandbox.admin.credit(credit)).debt.amount, 2500);

    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'big', amount: 7501, currency: 'USD' }] }),
      UpdateRejection.LimitExceeded,
      /credit limit/,
    );
    await expectRejection(
      () => handle.executeUpdate(closeUpdate, { args: [{}] }),
      UpdateRejection.InvalidState,
      /debt/,
    );

    const settled = await handle.executeUpdate(settleUpdate, { args: [{ settlementId: 's1' }], updateId: 's1' });
    assert.equal(settled.outcome, 'approved');
    assert.equal(settled.amount, 2500);
    assert.equal(settled.callerReference, `${id}:settle:s1`);
    assert.equal((await snapshotOf(handle)).debt, 0);
    let ledger = await env.sandbox.admin.credit(credit);
    assert.equal(ledger.debt.amount, 0);
    assert.equal(ledger.settledTotal.amount, 2500);
    await expectRejection(
      () => handle.executeUpdate(settleUpdate, { args: [{ settlementId: 's2' }] }),
      UpdateRejection.InvalidState,
      /no debt/,
    );

    // 80% of the limit: the workflow settles by itself.
    const p2 = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p2', amount: 8000, currency: 'USD' }],
      updateId: 'p2',
    });
    assert.equal(p2.outcome, 'approved');
    const afterAuto = await waitForSnapshot(
      handle,
      (s) => s.debt === 0 && s.state === 'active',
      10_000,
      'threshold settlement',
    );
    assert.ok(
      afterAuto.transactions.some((t) => t.operation === 'settle' && t.id === 'wf:settle-1' && t.status === 'Success'),
    );
    ledger = await env.sandbox.admin.credit(credit);
    assert.equal(ledger.debt.amount, 0);
    assert.equal(ledger.settledTotal.amount, 10_500);
    assert.equal((await env.sandbox.admin.transactions(`${id}:settle:wf:settle-1`)).length, 1);

    const closed = await handle.executeUpdate(closeUpdate, { args: [{}] });
    assert.equal(closed.state, 'closed');
    // Settle on a closed account: refused, and nothing reaches FPS.
    await expectRejection(
      () => handle.executeUpdate(settleUpdate, { args: [{ settlementId: 'late' }] }),
      UpdateRejection.InvalidState,
      /closed/,
    );
    assert.deepEqual(await env.sandbox.admin.transactions(`${id}:settle:late`), []);
    await saveHistory(handle, 'postpaid-lifecycle');
  });

  it('postpaid: settlement failures past the retry limit make it delinquent; the write-off closes it', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 10_000,
      settings: {
        ...FAST,
        settlementThresholdPercent: 100,
        settlementCycleMs: 3_600_000,
        settlementRetryLimit: 1,
        settlementRetryIntervalMs: 300,
        writeOffGraceMs: 800,
      },
    });
    const id = input.instrumentId;
    const ret = await authorize(env.sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');
    // A debt ending in .52 makes SettleDebt fail (sandbox magic amount).
    await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'a', amount: 1025, currency: 'USD' }],
      updateId: 'a',
    });
    await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'b', amount: 27, currency: 'USD' }],
      updateId: 'b',
    });
    const first = await handle.executeUpdate(settleUpdate, { args: [{ settlementId: 'try-1' }], updateId: 'try-1' });
    assert.equal(first.outcome, 'declined');
    assert.equal(first.transactionStatus, 'Failure');
    // The retry (after settlementRetryIntervalMs) fails too: delinquent, then written off after the grace period.
    await waitForState(handle, 'delinquent', 10_000);
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'c', amount: 1, currency: 'USD' }] }),
      UpdateRejection.InvalidState,
    );
    const closed = await waitForState(handle, 'closed', 10_000);
    assert.equal(closed.debt, 0);
    const ledger = await env.sandbox.admin.credit(credit);
    assert.equal(ledger.debt.amount, 0);
    assert.equal(ledger.writtenOffTotal.amount, 1052);
    assert.equal((await env.sandbox.admin.transactions(`${id}:writeoff:wf:writeoff-1`))[0]?.status, 'Success');
    const failures = await env.sandbox.admin.transactions(`${id}:settle:wf:settle-1`);
    assert.equal(failures[0]?.status, 'Failure');
    await saveHistory(handle, 'postpaid-delinquent');
  });

  it('postpaid: write-off on demand', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 5_000,
      settings: FAST,
    });
    const ret = await authorize(env.sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');
    await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'a', amount: 700, currency: 'USD' }],
      updateId: 'a',
    });
    await expectRejection(
      () => handle.executeUpdate(writeOffUpdate, { args: [{ writeOffId: 'w0', amount: 100 }] }),
      UpdateRejection.LimitExceeded,
    );
    const w = await handle.executeUpdate(writeOffUpdate, { args: [{ writeOffId: 'w1' }], updateId: 'w1' });
    assert.equal(w.outcome, 'approved');
    assert.equal(w.state, 'closed');
    assert.equal((await env.sandbox.admin.credit(credit)).writtenOffTotal.amount, 700);
  });

  it('single use (pay): authorize, pay, refund in two parts', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'single-use',
      amount: 2000,
      settings: FAST,
    });
    const id = input.instrumentId;
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'authorized');
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'x', amount: 2001, currency: 'USD' }] }),
      UpdateRejection.LimitExceeded,
    );
    const paid = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'order-1', amount: 2000, currency: 'USD' }],
      updateId: 'order-1',
    });
    assert.equal(paid.outcome, 'approved');
    assert.equal(paid.state, 'paid');
    const [charge] = await env.sandbox.admin.transactions(`${id}:pay:order-1`);
    assert.equal(charge.status, 'Success');
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'order-2', amount: 1, currency: 'USD' }] }),
      UpdateRejection.InvalidState,
    );

    const r1 = await handle.executeUpdate(refundUpdate, {
      args: [{ refundId: 'r1', purchaseId: 'order-1', amount: 500 }],
      updateId: 'r1',
    });
    assert.equal(r1.state, 'partiallyRefunded');
    const r2 = await handle.executeUpdate(refundUpdate, {
      args: [{ refundId: 'r2', purchaseId: 'order-1' }],
      updateId: 'r2',
    });
    assert.equal(r2.amount, 1500);
    assert.equal(r2.state, 'refunded');
    const tx = await env.sandbox.admin.transaction(charge.id);
    assert.equal(tx.refundedAmount.amount, 2000);
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r3', purchaseId: 'order-1', amount: 1 }] }),
      UpdateRejection.InvalidState,
    );
    await saveHistory(handle, 'single-use-pay');
  });

  it('single use (reserve): reserve, capture; capturing twice is refused without an FPS call; another is voided', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'single-use',
      amount: 3000,
      singleUseMode: 'reserve',
      settings: FAST,
    });
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'authorized');
    const reserved = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'o1', amount: 3000, currency: 'USD' }],
      updateId: 'o1',
    });
    assert.equal(reserved.outcome, 'approved');
    assert.equal(reserved.transactionStatus, 'Reserved');
    assert.equal(reserved.state, 'reserved');
    assert.equal((await env.sandbox.admin.transaction(reserved.transactionId!)).status, 'Reserved');

    const captured = await handle.executeUpdate(captureUpdate, {
      args: [{ captureId: 'c1', amount: 2500 }],
      updateId: 'c1',
    });
    assert.equal(captured.outcome, 'approved');
    assert.equal(captured.state, 'captured');
    let tx = await env.sandbox.admin.transaction(reserved.transactionId!);
    assert.equal(tx.status, 'Success');
    assert.equal(tx.settledAmount.amount, 2500);
    const updatedAt = (tx as unknown as { updatedAt: string }).updatedAt;

    await expectRejection(
      () => handle.executeUpdate(captureUpdate, { args: [{ captureId: 'c2' }] }),
      UpdateRejection.InvalidState,
      /captured/,
    );
    await expectRejection(
      () => handle.executeUpdate(voidUpdate, { args: [{ voidId: 'v1' }] }),
      UpdateRejection.InvalidState,
    );
    tx = await env.sandbox.admin.transaction(reserved.transactionId!);
    assert.equal((tx as unknown as { updatedAt: string }).updatedAt, updatedAt, 'no FPS call touched the transaction');
    const snap: InstrumentSnapshot = await snapshotOf(handle);
    assert.equal(snap.charged, 2500);
    await saveHistory(handle, 'single-use-reserve');

    const other = await startInstrument(env.worker.taskQueue, {
      type: 'single-use',
      amount: 900,
      singleUseMode: 'reserve',
      settings: FAST,
    });
    await authorize(env.sandbox, other.handle, other.input);
    await waitForState(other.handle, 'authorized');
    const r = await other.handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'o', amount: 900, currency: 'USD' }],
      updateId: 'o',
    });
    const voided = await other.handle.executeUpdate(voidUpdate, { args: [{ voidId: 'v' }], updateId: 'v' });
    assert.equal(voided.outcome, 'approved');
    assert.equal(voided.state, 'voided');
    assert.equal((await env.sandbox.admin.transaction(r.transactionId!)).status, 'Cancelled');
  });

  it('an aborted authorization closes the instrument', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 1000,
      settings: FAST,
    });
    const ret = await authorize(env.sandbox, handle, input, 'abort');
    assert.equal(ret.outcome, 'aborted');
    const snap = await waitForState(handle, 'closed');
    assert.equal(snap.closeReason, 'authorization aborted by the buyer');
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'p', amount: 1, currency: 'USD' }] }),
      UpdateRejection.InvalidState,
    );
  });
});

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}
