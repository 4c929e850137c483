// Issue 12's confirmed defect: a retried operation older than the workflow's window of processed
// ids (here processedIdLimit 4) was sent to FPS again, FPS replayed it (nothing moved there), and
// the workflow counted it a second time. Now the workflow asks the record (the ledger store) about
// any id it no longer remembers: a recorded one is answered with its original result, nothing is
// counted, and refunds of purchases older than the window work within what is refundable.
import assert from 'node:assert/strict';
import { withRecord } from '../../activities/record-activities';
import { callerReferenceFor } from '../../fps/caller-reference';
import {
  closeUpdate,
  fundUpdate,
  purchaseUpdate,
  refundUpdate,
  UpdateRejection,
  type InstrumentSettings,
  type OperationResult,
} from '../../workflows/messages';
import {
  authorize,
  expectRejection,
  FAST,
  saveHistory,
  sandboxActivities,
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

  async function activePrepaid(fundingAmount: number, settings: InstrumentSettings = WINDOW) {
    const started = await startInstrument(worker.taskQueue, { type: 'prepaid', fundingAmount, settings });
    const ret = await authorize(sandbox, started.handle, started.input);
    await waitForState(started.handle, 'active');
    const tokens = (ret as { tokens: { prepaidInstrumentId: string; prepaidSenderTokenId: string } }).tokens;
    return { ...started, prepaidId: tokens.prepaidInstrumentId, senderTokenId: tokens.prepaidSenderTokenId };
  }

  /** The recorded money activities, called as the workflow's local activity would call them. */
  const recorded = () => withRecord(sandboxActivities(sandbox.url), worker.ledger);

  /** A 1.00 purchase paid and recorded by the activity, as the workflow's call would, that the workflow never hears of. */
  async function payAsLostTask(
    input: { instrumentId: string; customerId: string },
    senderTokenId: string,
    instrumentType: 'prepaid' | 'postpaid',
    operationId: string,
  ) {
    const callerReference = callerReferenceFor(input.instrumentId, 'pay', operationId);
    const charged = await recorded().pay({
      instrumentId: input.instrumentId,
      callerReference,
      senderTokenId,
      amount: { amount: 100, currency: 'USD' },
      record: {
        instrumentId: input.instrumentId,
        customerId: input.customerId,
        instrumentType,
        operation: 'purchase',
        operationId,
        amount: 100,
        currency: 'USD',
        callerReference,
      },
    });
    return { callerReference, charged };
  }

  /** A row's counted_at for one of the instrument's operations. */
  const countedAt = async (instrumentId: string, operation: string, id: string) =>
    (await worker.ledger.operation(instrumentId, operation, id))?.counted_at ?? null;

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

  // What a lost workflow task leaves behind (a worker crash, a Temporal or database restart right
  // after the local activity): FPS did it and the record has its row, but the workflow's durable
  // state never counted it. Here the activity is called exactly as the workflow calls it, and the
  // workflow never hears of it; the client then retries, as after a 504.
  it('a purchase recorded by an activity whose workflow task was lost is counted when retried beyond the window', async () => {
    const { handle, input, prepaidId, senderTokenId } = await activePrepaid(5_000);
    await buyMany(handle, 8); // forgotten > 0: any new id is looked up in the record first
    const { callerReference, charged } = await payAsLostTask(input, senderTokenId, 'prepaid', 'lost-1');
    assert.equal(charged.transactionStatus, 'Success');
    assert.equal(await countedAt(input.instrumentId, 'purchase', 'lost-1'), null, 'recorded, not counted');
    const before = (await snapshotOf(handle)).balance!;
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, before - 100, 'FPS moved it');

    const retry = await buy(handle, 'lost-1', 100);
    assert.equal(retry.outcome, 'approved');
    assert.equal(retry.transactionId, charged.transactionId, 'FPS answered the same transaction');
    const after = await snapshotOf(handle);
    assert.equal(after.balance, before - 100, 'the workflow counted it, once');
    assert.equal(after.purchasesApproved, 9);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, after.balance, 'FPS agrees');
    assert.equal((await sandbox.admin.transactions(callerReference)).length, 1, 'one charge at FPS');

    // Counted now: once it leaves the window again, a retry is answered from the record.
    for (let i = 1; i <= 6; i++) await buy(handle, `later-${i}`, 10);
    const deadline = Date.now() + 10_000;
    while ((await countedAt(input.instrumentId, 'purchase', 'lost-1')) === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(await countedAt(input.instrumentId, 'purchase', 'lost-1'), null, 'acknowledged as counted');
    const balance = (await snapshotOf(handle)).balance;
    assert.equal((await buy(handle, 'lost-1', 100)).transactionId, charged.transactionId);
    assert.equal((await snapshotOf(handle)).balance, balance, 'not counted again');
  });

  it('a refund of an old purchase recorded by a lost task is refunded in full when retried, not refused', async () => {
    const { handle, input, prepaidId } = await activePrepaid(5_000);
    const [p1] = await buyMany(handle, 8);
    const callerReference = callerReferenceFor(input.instrumentId, 'refund', 'r-lost');
    const refunded = await recorded().refund({
      instrumentId: input.instrumentId,
      callerReference,
      transactionId: p1.transactionId!,
      amount: { amount: 100, currency: 'USD' },
      record: {
        instrumentId: input.instrumentId,
        customerId: input.customerId,
        instrumentType: 'prepaid',
        operation: 'refund',
        operationId: 'r-lost',
        amount: 100,
        currency: 'USD',
        parentOperationId: 'p1',
        callerReference,
      },
    });
    assert.equal(refunded.transactionStatus, 'Success');
    const before = (await snapshotOf(handle)).balance!;

    const retry = await handle.executeUpdate(refundUpdate, {
      args: [{ refundId: 'r-lost', purchaseId: 'p1', amount: 100 }],
    });
    assert.equal(retry.outcome, 'approved', 'the record counted this refund already, the workflow had not');
    assert.equal(retry.transactionId, refunded.transactionId);
    assert.equal((await snapshotOf(handle)).balance, before + 100);
    assert.equal((await sandbox.admin.prepaid(prepaidId)).balance.amount, before + 100, 'FPS agrees');
    assert.equal((await sandbox.admin.transactions(callerReference)).length, 1, 'one refund at FPS');
    await expectRejection(
      () => handle.executeUpdate(refundUpdate, { args: [{ refundId: 'r-more', purchaseId: 'p1', amount: 1 }] }),
      UpdateRejection.LimitExceeded,
    );
  });

  // Postpaid: a purchase beyond the window asks the record in its own pay call (RECORD_IN_PAY_PATCH),
  // and the machine withdraws a purchase the record has already counted.
  describe('postpaid: the pay call asks the record itself', () => {
    async function activePostpaid(globalAmountLimit = 100_000) {
      const started = await startInstrument(worker.taskQueue, {
        type: 'postpaid',
        creditLimit: 100_000,
        globalAmountLimit,
        settings: WINDOW,
      });
      const ret = await authorize(sandbox, started.handle, started.input);
      await waitForState(started.handle, 'active');
      const tokens = (ret as { tokens: { creditInstrumentId: string; creditSenderTokenId: string } }).tokens;
      return { ...started, creditId: tokens.creditInstrumentId, senderTokenId: tokens.creditSenderTokenId };
    }

    /** The activity types of the local activities in this run's history, in order. */
    async function localActivities(handle: InstrumentHandle): Promise<string[]> {
      const history = await handle.fetchHistory();
      return (history.events ?? []).flatMap((event) => {
        const marker = event.markerRecordedEventAttributes;
        const data =
          marker?.markerName === 'core_local_activity' ? marker.details?.data?.payloads?.[0]?.data : undefined;
        return data
          ? [(JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type: string }).activity_type]
          : [];
      });
    }
    const count = (types: string[], type: string) => types.filter((t) => t === type).length;

    it('a new purchase and a retry of an old one: one pay call each, no lookup of its own; the retry is withdrawn, counted once', async () => {
      const { handle, input, creditId } = await activePostpaid();
      const [first] = await buyMany(handle, 11);
      const p12 = await buy(handle, 'p12', 100);
      assert.equal(p12.outcome, 'approved');
      const before = await snapshotOf(handle);
      assert.deepEqual([before.debt, before.totalCharged, before.purchasesApproved], [1_200, 1_200, 12]);

      const retry = await buy(handle, 'p1', 100);
      assert.equal(retry.outcome, 'approved');
      assert.equal(retry.transactionId, first.transactionId, 'the original FPS transaction');
      const after = await snapshotOf(handle);
      assert.deepEqual(
        [after.debt, after.totalCharged, after.purchasesApproved, after.pending.length],
        [1_200, 1_200, 12, 0],
        'withdrawn: nothing counted again, nothing held',
      );
      assert.deepEqual(after.transactions, before.transactions, 'no second p1 in the recent transactions');
      assert.equal((await sandbox.admin.credit(creditId)).debt.amount, 1_200, 'FPS agrees');
      assert.equal((await sandbox.admin.transactions(`${input.instrumentId}:pay:p1`)).length, 1, 'one charge at FPS');

      const types = await localActivities(handle);
      assert.equal(count(types, 'findRecordedOperation'), 0, 'no lookup of its own');
      assert.equal(count(types, 'pay'), 13, 'one pay call per purchase, the retry included');
      await saveHistory(handle, 'postpaid-beyond-window');
    });

    it('the same old id with another amount is refused, and nothing is held or sent', async () => {
      const { handle, creditId } = await activePostpaid();
      await buyMany(handle, 8);
      const before = await snapshotOf(handle);
      await expectRejection(() => buy(handle, 'p2', 250), UpdateRejection.DuplicateId, /already used with amount 100/);
      const after = await snapshotOf(handle);
      assert.deepEqual([after.debt, after.totalCharged, after.pending.length], [before.debt, before.totalCharged, 0]);
      assert.equal((await sandbox.admin.credit(creditId)).debt.amount, 800, 'FPS unchanged');
    });

    it('a retry the machine would refuse as new (global limit reached) is looked up first and answered', async () => {
      const { handle, creditId } = await activePostpaid(500);
      const [first] = await buyMany(handle, 5); // total charged 5.00: the global amount limit
      await expectRejection(() => buy(handle, 'new-one', 100), UpdateRejection.LimitExceeded);
      const again = await buy(handle, 'p1', 100);
      assert.equal(again.outcome, 'approved', 'p1 answers its recorded result');
      assert.equal(again.transactionId, first.transactionId);
      assert.equal((await snapshotOf(handle)).totalCharged, 500);
      assert.equal((await sandbox.admin.credit(creditId)).debt.amount, 500);
      // Both looked up before any call: the new id the limit refuses (it could have been an old one) and p1.
      assert.equal(count(await localActivities(handle), 'findRecordedOperation'), 2);
    });

    it('a purchase recorded by an activity whose workflow task was lost is charged once and counted when retried', async () => {
      const { handle, input, creditId, senderTokenId } = await activePostpaid();
      await buyMany(handle, 8);
      const { callerReference, charged } = await payAsLostTask(input, senderTokenId, 'postpaid', 'lost-1');
      assert.equal(charged.transactionStatus, 'Success');
      assert.equal(await countedAt(input.instrumentId, 'purchase', 'lost-1'), null, 'recorded, not counted');

      const retry = await buy(handle, 'lost-1', 100);
      assert.equal(retry.transactionId, charged.transactionId, 'FPS answered the same transaction');
      const after = await snapshotOf(handle);
      assert.deepEqual([after.debt, after.purchasesApproved], [900, 9], 'the workflow counted it, once');
      assert.equal((await sandbox.admin.credit(creditId)).debt.amount, 900, 'FPS agrees');
      assert.equal((await sandbox.admin.transactions(callerReference)).length, 1, 'one charge at FPS');
    });
  });

  it('the record learns what the workflow counted: ids leaving the window first, all of them when it completes', async () => {
    const { handle, input } = await activePrepaid(5_000, { ...WINDOW, closedRetentionMs: 200 });
    await buyMany(handle, 12);
    const deadline = Date.now() + 10_000;
    while ((await countedAt(input.instrumentId, 'purchase', 'p6')) === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    for (let i = 1; i <= 6; i++)
      assert.notEqual(await countedAt(input.instrumentId, 'purchase', `p${i}`), null, `p${i} left the window`);
    assert.equal(await countedAt(input.instrumentId, 'purchase', 'p12'), null, 'p12 is still in the window');

    await handle.executeUpdate(closeUpdate, { args: [{ reason: 'test' }] });
    await handle.result();
    for (let i = 1; i <= 12; i++)
      assert.notEqual(await countedAt(input.instrumentId, 'purchase', `p${i}`), null, `p${i} counted at completion`);
  });
});
