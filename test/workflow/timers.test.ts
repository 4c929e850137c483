// Time-driven behaviour, with millisecond settings: the postpaid settlement cycle, and expiry of
// each instrument kind (a postpaid account with debt settles it first, then closes).
import assert from 'node:assert/strict';
import { purchaseUpdate, UpdateRejection } from '../../workflows/messages';
import type { TestWorker } from '../support/temporal';
import {
  authorize,
  expectRejection,
  FAST,
  startInstrument,
  startInstrumentWorker,
  startSandbox,
  waitForSnapshot,
  waitForState,
  type SandboxProcess,
} from './instrument-env';

describe('settlement cycles and expiry (Temporal + worker + sandbox process)', function () {
  this.timeout(60_000);
  let sandbox: SandboxProcess;
  let worker: TestWorker;

  before(async function () {
    this.timeout(120_000);
    sandbox = await startSandbox('timers');
    worker = await startInstrumentWorker(sandbox.url);
  });

  after(async () => {
    await worker?.stop();
    await sandbox?.service.stop();
  });

  it('postpaid: the settlement cycle collects the debt', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 10_000,
      settings: { ...FAST, settlementCycleMs: 1_500 },
    });
    const ret = await authorize(sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');
    await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'a', amount: 1_200, currency: 'USD' }],
      updateId: 'a',
    });
    const snap = await waitForSnapshot(handle, (s) => s.debt === 0, 10_000, 'the cycle settlement');
    assert.ok(snap.transactions.some((t) => t.operation === 'settle' && t.status === 'Success'));
    assert.ok((snap.nextSettlementAt ?? 0) > Date.now() - 5_000, 'the next cycle is scheduled');
    assert.equal((await sandbox.admin.credit(credit)).settledTotal.amount, 1_200);
  });

  it('postpaid: at expiry, purchases stop, the debt is settled and the account closes', async () => {
    const { handle, input } = await startInstrument(worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 10_000,
      settings: { ...FAST, expiresAt: Date.now() + 2_500, settlementCycleMs: 3_600_000 },
    });
    const ret = await authorize(sandbox, handle, input);
    const credit = (ret as { tokens: { creditInstrumentId: string } }).tokens.creditInstrumentId;
    await waitForState(handle, 'active');
    await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'a', amount: 800, currency: 'USD' }],
      updateId: 'a',
    });
    const closed = await waitForState(handle, 'closed', 10_000);
    assert.equal(closed.debt, 0);
    assert.equal((await sandbox.admin.credit(credit)).settledTotal.amount, 800);
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'b', amount: 1, currency: 'USD' }] }),
      UpdateRejection.InvalidState,
    );
  });

  it('prepaid and single use close at expiry', async () => {
    const prepaid = await startInstrument(worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 1_000,
      // Room for authorization, its instrument.authorized event and the initial funding before expiry.
      settings: { ...FAST, expiresAt: Date.now() + 4_000 },
    });
    await authorize(sandbox, prepaid.handle, prepaid.input);
    await waitForState(prepaid.handle, 'active');
    const single = await startInstrument(worker.taskQueue, {
      type: 'single-use',
      amount: 500,
      settings: { ...FAST, expiresAt: Date.now() + 1_000 },
    });
    await authorize(sandbox, single.handle, single.input);
    assert.equal((await waitForState(single.handle, 'closed', 10_000)).closeReason, 'expired');
    assert.equal((await waitForState(prepaid.handle, 'closed', 10_000)).closeReason, 'expired');
  });
});
