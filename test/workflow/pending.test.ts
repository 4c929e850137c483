// Pending and unknown FPS outcomes: a Pending purchase answers 'pending' at once and is resolved
// later by a verified IPN (signal) or, with IPNs off, by polling GetTransactionStatus; a call whose
// retries ran out is re-sent with the same CallerReference; late notifications change nothing.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { purchaseUpdate, transactionStatusChangedSignal } from '../../workflows/messages';
import type { TestWorker } from '../support/temporal';
import {
  authorize,
  FAST,
  saveHistory,
  snapshotOf,
  startInstrument,
  startInstrumentWorker,
  startIpnReceiver,
  startSandbox,
  waitForSnapshot,
  waitForState,
  type SandboxProcess,
} from './instrument-env';

describe('pending and unknown outcomes (Temporal + worker + sandbox process)', function () {
  this.timeout(60_000);
  let sandbox: SandboxProcess;
  let worker: TestWorker;
  let receiver: Awaited<ReturnType<typeof startIpnReceiver>>;

  before(async function () {
    this.timeout(120_000);
    sandbox = await startSandbox('pending', { pendingDelayMs: 500 });
    receiver = await startIpnReceiver(sandbox);
    worker = await startInstrumentWorker(sandbox.url);
  });

  after(async () => {
    await worker?.stop();
    await receiver?.close();
    await sandbox?.service.stop();
  });

  async function activePrepaid(settings: Record<string, number>, fundingAmount = 10_000) {
    const started = await startInstrument(worker.taskQueue, { type: 'prepaid', fundingAmount, settings });
    const ret = await authorize(sandbox, started.handle, started.input);
    await waitForState(started.handle, 'active');
    return { ...started, prepaidId: (ret as { tokens: { prepaidInstrumentId: string } }).tokens.prepaidInstrumentId };
  }

  it('a Pending purchase (.13) answers pending at once and is resolved by the IPN', async () => {
    await sandbox.admin.ipn({ url: receiver.url, enabled: true });
    // Polling far off: only the IPN can resolve it within the test.
    const { handle, input, prepaidId } = await activePrepaid({ ...FAST, pollInitialMs: 120_000 });
    const before = receiver.received();
    const started = Date.now();
    const pending = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'slow', amount: 1_013, currency: 'USD' }],
      updateId: 'slow',
    });
    assert.equal(pending.outcome, 'pending');
    assert.equal(pending.transactionStatus, 'Pending');
    assert.ok(Date.now() - started < 400, 'the caller is not kept waiting for the resolution');
    let snap = await snapshotOf(handle);
    assert.equal(snap.pending.length, 1);
    assert.equal(snap.balance, 10_000 - 1_013, 'a pending purchase holds its amount');

    snap = await waitForSnapshot(handle, (s) => s.pending.length === 0, 10_000, 'the IPN to resolve the purchase');
    assert.ok(receiver.received() > before, 'an IPN arrived');
    assert.equal(snap.purchasesApproved, 1);
    assert.equal(snap.transactions.find((t) => t.id === 'slow')?.status, 'Success');
    const [tx] = await sandbox.admin.transactions(`${input.instrumentId}:pay:slow`);
    assert.equal(tx.status, 'Success');
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 10_000 - 1_013);
    // Asked again (a client retry), the purchase answers its resolution.
    const again = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'slow', amount: 1_013, currency: 'USD' }],
      updateId: 'slow-retry',
    });
    assert.equal(again.outcome, 'approved');
    assert.equal(again.transactionId, pending.transactionId);

    // A late, contradictory notification never overwrites the terminal status.
    await handle.signal(transactionStatusChangedSignal, {
      notificationType: 'TransactionStatus',
      transactionId: tx.id,
      transactionStatus: 'Failure',
      callerReference: tx.callerReference!,
    });
    await sleep(200);
    snap = await snapshotOf(handle);
    assert.equal(snap.balance, 10_000 - 1_013);
    assert.equal(snap.transactions.find((t) => t.id === 'slow')?.status, 'Success');
    await sandbox.admin.ipn({ enabled: false });
    await saveHistory(handle, 'prepaid-pending-ipn');
  });

  it('with IPNs off, polling resolves a Pending purchase to Success (.13) and another to Failure (.14)', async () => {
    await sandbox.admin.ipn({ enabled: false });
    const { handle, input, prepaidId } = await activePrepaid({ ...FAST, pollInitialMs: 200 });
    const ok = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p13', amount: 2_013, currency: 'USD' }],
      updateId: 'p13',
    });
    const ko = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p14', amount: 3_014, currency: 'USD' }],
      updateId: 'p14',
    });
    assert.equal(ok.outcome, 'pending');
    assert.equal(ko.outcome, 'pending');
    assert.equal((await snapshotOf(handle)).balance, 10_000 - 2_013 - 3_014);
    const snap = await waitForSnapshot(handle, (s) => s.pending.length === 0, 15_000, 'polling to resolve both');
    assert.equal(snap.balance, 10_000 - 2_013, 'the failed purchase released its hold');
    assert.equal(snap.purchasesApproved, 1);
    assert.equal(snap.transactions.find((t) => t.id === 'p14')?.status, 'Failure');
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:p14`))[0].status, 'Failure');
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 10_000 - 2_013);
    const declined = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p14', amount: 3_014, currency: 'USD' }],
      updateId: 'p14-again',
    });
    assert.equal(declined.outcome, 'declined');
    await saveHistory(handle, 'prepaid-pending-poll');
  });

  it('a Pending initial funding (.13) goes through fundingPending to active', async () => {
    await sandbox.admin.ipn({ enabled: false });
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 5_013,
      settings: { ...FAST, pollInitialMs: 200 },
    });
    await authorize(sandbox, handle, input);
    await waitForState(handle, 'fundingPending');
    const snap = await waitForState(handle, 'active', 10_000);
    assert.equal(snap.balance, 5_013);
  });

  it('retries run out (the sandbox keeps failing): the purchase is pending, then re-sent with the same CallerReference', async () => {
    const { handle, input, prepaidId } = await activePrepaid({ ...FAST, fpsCallAttempts: 2, pollInitialMs: 300 });
    await sandbox.admin.fault({ kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['Pay'] });
    const result = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'unknown', amount: 400, currency: 'USD' }],
      updateId: 'unknown',
    });
    assert.equal(result.outcome, 'pending');
    assert.equal(result.transactionId, undefined);
    const snap = await waitForSnapshot(handle, (s) => s.pending.length === 0, 10_000, 'the re-send');
    assert.equal(snap.purchasesApproved, 1);
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:unknown`)).length, 1);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 10_000 - 400);
    await saveHistory(handle, 'prepaid-unknown-resent');
  });
});
