// Exactly-once charges: a lost Pay answer is retried with the same CallerReference, a duplicate
// purchase id answers the first result, and a worker that dies mid-Pay is replaced without a second charge.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { purchaseUpdate, UpdateRejection } from '../../workflows/messages';
import type { Service } from '../support/processes';
import { uniqueTaskQueue, type TestWorker } from '../support/temporal';
import {
  authorize,
  expectRejection,
  FAST,
  snapshotOf,
  spawnWorkerProcess,
  startInstrument,
  startInstrumentWorker,
  startSandbox,
  waitForState,
  type SandboxProcess,
} from './instrument-env';

describe('idempotent purchases (Temporal + worker + sandbox process)', function () {
  this.timeout(60_000);
  let sandbox: SandboxProcess;
  let worker: TestWorker;

  before(async function () {
    this.timeout(120_000);
    sandbox = await startSandbox('idempotency');
    worker = await startInstrumentWorker(sandbox.url);
  });

  after(async () => {
    await worker?.stop();
    await sandbox?.service.stop();
  });

  async function activePrepaid(fundingAmount = 10_000) {
    const started = await startInstrument(worker.taskQueue, { type: 'prepaid', fundingAmount, settings: FAST });
    const ret = await authorize(sandbox, started.handle, started.input);
    await waitForState(started.handle, 'active');
    return { ...started, prepaidId: (ret as { tokens: { prepaidInstrumentId: string } }).tokens.prepaidInstrumentId };
  }

  it('the sandbox drops the Pay answer: the retry with the same CallerReference finds the one charge', async () => {
    const { handle, input, prepaidId } = await activePrepaid();
    await sandbox.admin.fault({ kind: 'drop', count: 1, actions: ['Pay'] });
    const result = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'dropped', amount: 700, currency: 'USD' }],
      updateId: 'dropped',
    });
    assert.equal(result.outcome, 'approved');
    const charges = await sandbox.admin.transactions(`${input.instrumentId}:pay:dropped`);
    assert.equal(charges.length, 1, 'one charge in the ledger');
    assert.equal(charges[0].id, result.transactionId);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 9_300);
    assert.equal((await snapshotOf(handle)).balance, 9_300);
  });

  it('a transient InternalError is retried; the purchase is approved once', async () => {
    const { handle, input, prepaidId } = await activePrepaid();
    await sandbox.admin.fault({ kind: 'error', code: 'InternalError', count: 2, actions: ['Pay'] });
    const result = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'flaky', amount: 300, currency: 'USD' }],
      updateId: 'flaky',
    });
    assert.equal(result.outcome, 'approved');
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:flaky`)).length, 1);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 9_700);
  });

  it('the same purchase id twice (same updateId, then a new one): the first result, one charge', async () => {
    const { handle, input, prepaidId } = await activePrepaid();
    const request = { purchaseId: 'order-7', amount: 1_000, currency: 'USD' };
    const first = await handle.executeUpdate(purchaseUpdate, { args: [request], updateId: 'order-7' });
    const again = await handle.executeUpdate(purchaseUpdate, { args: [request], updateId: 'order-7' });
    const other = await handle.executeUpdate(purchaseUpdate, { args: [request], updateId: 'order-7-retry' });
    assert.deepEqual(again, first);
    assert.deepEqual(other, first);
    // Concurrent duplicates join the one in flight.
    const concurrent = await Promise.all(
      [1, 2, 3].map((n) =>
        handle.executeUpdate(purchaseUpdate, {
          args: [{ purchaseId: 'order-8', amount: 500, currency: 'USD' }],
          updateId: `order-8-${n}`,
        }),
      ),
    );
    assert.equal(new Set(concurrent.map((r) => r.transactionId)).size, 1);
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:order-7`)).length, 1);
    assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:order-8`)).length, 1);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 8_500);
    assert.equal((await snapshotOf(handle)).purchasesApproved, 2);
    // The same id with another amount is a client bug: refused before anything is written.
    await expectRejection(
      () => handle.executeUpdate(purchaseUpdate, { args: [{ ...request, amount: 999 }], updateId: 'order-7-changed' }),
      UpdateRejection.DuplicateId,
    );
  });

  describe('the worker process dies in the middle of a Pay', () => {
    const taskQueue = uniqueTaskQueue('crash');
    let first: Service | undefined;
    let second: Service | undefined;

    after(async () => {
      await first?.stop();
      await second?.stop();
    });

    it('a new worker finishes the purchase: one charge, approved once', async function () {
      this.timeout(90_000);
      first = await spawnWorkerProcess('worker-crash-1', sandbox.url, taskQueue);
      // A short workflow task timeout: the dead worker's task is handed on after 2 s, not 10.
      const { handle, input } = await startInstrument(
        taskQueue,
        { type: 'prepaid', fundingAmount: 5_000, settings: FAST },
        { workflowTaskTimeout: 2_000 },
      );
      const ret = await authorize(sandbox, handle, input);
      const prepaidId = (ret as { tokens: { prepaidInstrumentId: string } }).tokens.prepaidInstrumentId;
      await waitForState(handle, 'active');

      // The sandbox holds the Pay for 2.5 s and then charges; the worker is killed while it waits.
      await sandbox.admin.fault({ kind: 'delay', ms: 2_500, count: 1, actions: ['Pay'] });
      const purchase = handle.executeUpdate(purchaseUpdate, {
        args: [{ purchaseId: 'crash-1', amount: 1_234, currency: 'USD' }],
        updateId: 'crash-1',
      });
      purchase.catch(() => undefined);
      await sleep(1_000);
      await first.kill9();
      await sleep(2_000);
      const charged = await sandbox.admin.transactions(`${input.instrumentId}:pay:crash-1`);
      assert.equal(charged.length, 1, 'the first Pay reached FPS and charged before the new worker existed');

      second = await spawnWorkerProcess('worker-crash-2', sandbox.url, taskQueue);
      const result = await purchase;
      assert.equal(result.outcome, 'approved');
      assert.equal(result.transactionId, charged[0].id, 'the re-executed Pay got the original transaction back');
      const after = await sandbox.admin.transactions(`${input.instrumentId}:pay:crash-1`);
      assert.equal(after.length, 1, 'still exactly one charge');
      assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, 5_000 - 1_234);
      const snap = await snapshotOf(handle);
      assert.equal(snap.balance, 5_000 - 1_234);
      assert.equal(snap.purchasesApproved, 1);
      // And the instrument goes on working with the new worker.
      const next = await handle.executeUpdate(purchaseUpdate, {
        args: [{ purchaseId: 'crash-2', amount: 100, currency: 'USD' }],
        updateId: 'crash-2',
      });
      assert.equal(next.outcome, 'approved');
    });
  });
});
