// Defects found by reading workflows/instrument.ts (issue 11), each driven through the real workflow
// on the dev server against the sandbox process: the test failed before its fix.
import assert from 'node:assert/strict';
import {
  captureUpdate,
  purchaseUpdate,
  settleUpdate,
  transactionStatusChangedSignal,
  UpdateRejection,
  voidUpdate,
  type TransactionStatusNotification,
} from '../../workflows/messages';
import type { TestWorker } from '../support/temporal';
import {
  authorize,
  expectRejection,
  FAST,
  snapshotOf,
  startInstrument,
  startInstrumentWorker,
  startSandbox,
  waitForSnapshot,
  waitForState,
  type SandboxProcess,
} from './instrument-env';

describe('review defects (Temporal + worker + sandbox process)', function () {
  this.timeout(60_000);
  let sandbox: SandboxProcess;
  let worker: TestWorker;

  before(async function () {
    this.timeout(120_000);
    sandbox = await startSandbox('defects', { pendingDelayMs: 300 });
    worker = await startInstrumentWorker(sandbox.url);
  });

  after(async () => {
    await worker?.stop();
    await sandbox?.service.stop();
  });

  afterEach(() => sandbox.admin.clearFaults());

  it('defect 1: a merchant settlement id never silences the automatic settlement (own ids are wf:-prefixed)', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 1000,
      settings: FAST,
    });
    const ret = await authorize(sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');
    const buy = (purchaseId: string, amount: number) =>
      handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId, amount, currency: 'USD' }], updateId: purchaseId });
    assert.equal((await buy('a', 100)).outcome, 'approved');
    // The id the workflow used for its own first settlement before the fix.
    const mine = await handle.executeUpdate(settleUpdate, { args: [{ settlementId: 'auto-1' }], updateId: 'auto-1' });
    assert.equal(mine.outcome, 'approved');
    assert.equal(mine.amount, 100);
    // 90 % of the line: the workflow settles by itself.
    assert.equal((await buy('b', 900)).outcome, 'approved');
    const after = await waitForSnapshot(handle, (s) => s.debt === 0, 10_000, 'the automatic settlement');
    const own = after.transactions.find((t) => t.operation === 'settle' && t.id === 'wf:settle-1');
    assert.equal(own?.status, 'Success', 'the automatic settlement runs under its own id');
    assert.equal(own?.amount, 900);
    const ledger = await sandbox.admin.credit(credit);
    assert.equal(ledger.debt.amount, 0);
    assert.equal(ledger.settledTotal.amount, 1000, 'FPS settled the merchant 1.00 and the automatic 9.00');
    // A caller cannot send the workflow's own ids.
    await expectRejection(
      () => handle.executeUpdate(settleUpdate, { args: [{ settlementId: 'wf:settle-2' }] }),
      UpdateRejection.InvalidRequest,
      /wf:/,
    );
  });

  it('defect 2: a duplicated Reserved IPN during a capture whose Settle answers are lost does not stall it', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'single-use',
      amount: 2013,
      singleUseMode: 'reserve',
      settings: { ...FAST, fpsCallAttempts: 2 },
    });
    await authorize(sandbox, handle, input);
    await waitForState(handle, 'authorized');
    // A Pending reserve (.13): FPS decides Reserved after the sandbox's pending delay; polling finds it.
    const reserve = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'r', amount: 2013, currency: 'USD' }],
      updateId: 'r',
    });
    assert.equal(reserve.outcome, 'pending');
    await waitForState(handle, 'reserved', 10_000);
    const reservation = reserve.transactionId!;

    // Every Settle attempt of the capture fails without reaching the ledger: the outcome is unknown.
    await sandbox.admin.fault({ kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['Settle'] });
    const capture = handle.executeUpdate(captureUpdate, { args: [{ captureId: 'c' }], updateId: 'c' });
    await waitForSnapshot(handle, (s) => s.pending.some((p) => p.operation === 'capture'), 10_000, 'the capture');
    // Meanwhile the reservation's Reserved IPN arrives again (late duplicate).
    const duplicate: TransactionStatusNotification = {
      notificationType: 'TransactionStatus',
      transactionId: reservation,
      transactionStatus: 'Reserved',
      callerReference: `${input.instrumentId}:reserve:r`,
    };
    await handle.signal(transactionStatusChangedSignal, duplicate);

    const captured = await capture;
    const final =
      captured.outcome === 'approved'
        ? captured
        : (await waitForSnapshot(handle, (s) => s.pending.length === 0, 15_000, 'the capture to resolve'),
          await handle.executeUpdate(captureUpdate, { args: [{ captureId: 'c' }], updateId: 'c-again' }));
    assert.equal(final.outcome, 'approved', 'the re-sent Settle captures the reservation');
    const snap = await snapshotOf(handle);
    assert.equal(snap.charged, 2013);
    const tx = await sandbox.admin.transaction(reservation);
    assert.equal(tx.status, 'Success');
    assert.equal(tx.settledAmount.amount, 2013, 'captured once');
  });

  it('defect 2 (void): a duplicated Reserved IPN during a void whose Cancel answers are lost does not stall it', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'single-use',
      amount: 700,
      singleUseMode: 'reserve',
      settings: { ...FAST, fpsCallAttempts: 2 },
    });
    await authorize(sandbox, handle, input);
    await waitForState(handle, 'authorized');
    const reserve = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'r', amount: 700, currency: 'USD' }],
      updateId: 'r',
    });
    assert.equal(reserve.outcome, 'approved');
    await sandbox.admin.fault({ kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['Cancel'] });
    const voiding = handle.executeUpdate(voidUpdate, { args: [{ voidId: 'v' }], updateId: 'v' });
    await waitForSnapshot(handle, (s) => s.pending.some((p) => p.operation === 'void'), 10_000, 'the void');
    await handle.signal(transactionStatusChangedSignal, {
      notificationType: 'TransactionStatus',
      transactionId: reserve.transactionId!,
      transactionStatus: 'Reserved',
      callerReference: `${input.instrumentId}:reserve:r`,
    });
    const first = await voiding;
    if (first.outcome !== 'approved')
      await waitForSnapshot(handle, (s) => s.pending.length === 0, 15_000, 'the void to resolve');
    const snap = await waitForSnapshot(handle, (s) => s.final, 10_000, 'the instrument to finish');
    assert.equal(snap.reserved, 0);
    assert.equal((await sandbox.admin.transaction(reserve.transactionId!)).status, 'Cancelled');
  });

  it('defect 3: a declined single-use purchase (.51, no transaction) leaves no Active token behind', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'single-use',
      amount: 1051,
      settings: { ...FAST, closedRetentionMs: 60_000 },
    });
    const ret = await authorize(sandbox, handle, input);
    const tokenId = (ret as { tokens: { tokenId: string } }).tokens.tokenId;
    await waitForState(handle, 'authorized');
    const declined = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p', amount: 1051, currency: 'USD' }],
      updateId: 'p',
    });
    assert.equal(declined.outcome, 'declined');
    assert.equal(declined.reason?.code, 'TransactionDenied');
    const deadline = Date.now() + 10_000;
    let status = '';
    while (Date.now() < deadline && status !== 'Inactive') {
      status = (await sandbox.admin.token(tokenId)).status;
      if (status !== 'Inactive') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 'Inactive', 'the unused token is cancelled at FPS');
  });
});
