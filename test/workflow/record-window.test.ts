// Issue 12's confirmed defect: a retried operation older than the workflow's window of processed
// ids (here processedIdLimit 4) was sent to FPS again, FPS replayed it (nothing moved there), and
// the workflow counted it a second time. Now the workflow asks the record (the ledger store) about
// any id it no longer remembers: a recorded one is answered with its original result, nothing is
// counted, and refunds of purchases older than the window work within what is refundable.
import assert from 'node:assert/strict';
import {
  fundUpdate,
  purchaseUpdate,
  refundUpdate,
  UpdateRejection,
  type OperationResult,
} from '../../workflows/messages';
import {
  authorize,
  expectRejection,
  FAST,
  snapshotOf,
  startInstrument,
  startInstrumentWorker,
  startSandbox,
  waitForState,
  type InstrumentHandle,
  type InstrumentWorker,
  type SandboxProcess,
} from './instrument-env';

const WINDOW = { ...FAST, processedIdLimit: 4 };

describe('operations older than the window of processed ids (Temporal + worker + sandbox + SQLite record)', function () {
  this.timeout(90_000);
  let sandbox: SandboxProcess;
  let worker: InstrumentWorker;

  before(async function () {
    this.timeout(120_000);
    sandbox = await startSandbox('record-window');
    worker = await startInstrumentWorker(sandbox.url);
  });

  after(async () => {
    await worker?.stop();
    await sandbox?.service.stop();
  });

  const buy = (handle: InstrumentHandle, purchaseId: string, amount: number) =>
    handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId, amount, currency: 'USD' }],
      updateId: `${purchaseId}-${Math.random()}`,
    });

  async function activePrepaid(fundingAmount: number) {
    const started = await startInstrument(worker.taskQueue, { type: 'prepaid', fundingAmount, settings: WINDOW });
    const ret = await authorize(sandbox, started.handle, started.input);
    await waitForState(started.handle, 'active');
    return { ...started, prepaidId: (ret as { tokens: { prepaidInstrumentId: string } }).tokens.prepaidInstrumentId };
  }

  /** Purchases #1..#n of 1.00 each; returns their results. */
  async function buyMany(handle: InstrumentHandle, n: number): Promise<OperationResult[]> {
    const results: OperationResult[] = [];
    for (let i = 1; i <= n; i++) results.push(await buy(handle, `p${i}`, 100));
    return results;
  }

  it('a retry of purchase #1 after 10 more answers its original result; balance, FPS and record unchanged', async () => {
    const { handle, input, prepaidId } = await activePrepaid(5_000);
    const [first] = await buyMany(handle, 11);
    assert.equal(first.outcome, 'approved');
    const before = await snapshotOf(handle);
    assert.equal(before.balance, 5_000 - 1_100);

    const retry = await buy(handle, 'p1', 100);
    assert.equal(retry.outcome, 'approved');
    assert.equal(retry.transactionId, first.transactionId, 'the original FPS transaction');
    assert.equal((await snapshotOf(handle)).balance, before.balance, 'the workflow did not count it again');
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, before.balance, 'FPS agrees');
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:p1`)).length, 1, 'one charge at FPS');

    // The same old id with another amount is the caller's mistake, at any age.
    await expectRejection(() => buy(handle, 'p2', 250), UpdateRejection.DuplicateId, /already used with amount 100/);
  });

  it('a retry of an old purchase is answered even when the same request would be refused as new', async () => {
    const { handle } = await activePrepaid(300);
    const [first] = await buyMany(handle, 3); // balance 0.00
    // Five one-cent fundings push p1 out of the window (4 ids); the balance is 0.05, less than p1's 1.00.
    for (let i = 1; i <= 5; i++)
      await handle.executeUpdate(fundUpdate, { args: [{ fundingId: `f${i}`, amount: 1, currency: 'USD' }] });
    await expectRejection(() => buy(handle, 'new-one', 100), UpdateRejection.LimitExceeded);
    const again = await buy(handle, 'p1', 100);
    assert.equal(again.outcome, 'approved', 'p1 answers its recorded result');
    assert.equal(again.transactionId, first.transactionId);
    assert.equal((await snapshotOf(handle)).balance, 5);
  });

  it('refunds of a purchase older than the window: full once, then LimitExceeded; unknown purchases refused', async () => {
    const { handle, input, prepaidId } = await activePrepaid(5_000);
    await buyMany(handle, 8);
    const balance = (await snapshotOf(handle)).balance!;

    const partial = await handle.executeUpdate(refundUpdate, {
      args: [{ refundId: 'r1', purchaseId: 'p1', amount: 40 }],
    });
    assert.equal(partial.outcome, 'approved');
    const rest = await handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r2', purchaseId: 'p1' }] });
    assert.equal(rest.outcome, 'approved');
    assert.equal(rest.amount, 60, 'the rest of p1');
    assert.equal((await snapshotOf(handle)).balance, balance + 100);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, balance + 100);

    // Push p1 and the refunds out of the window again, then try to refund more.
    for (let i = 20; i < 26; i++) await buy(handle, `q${i}`, 10);
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r3', purchaseId: 'p1', amount: 1 }] }),
      UpdateRejection.LimitExceeded,
    );
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r4', purchaseId: 'never-bought' }] }),
      UpdateRejection.UnknownPurchase,
    );
    const [r1] = await sandbox.admin.transactions(`${input.instrumentId}:refund:r1`);
    const [r2] = await sandbox.admin.transactions(`${input.instrumentId}:refund:r2`);
    assert.deepEqual([r1?.amount.amount, r2?.amount.amount], [40, 60], 'the two refunds at FPS');
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:refund:r3`)).length, 0);
  });
});
