// Continue-as-new: with a small event threshold the instrument changes runs every few purchases;
// state, balances and processed purchase ids survive, and purchases keep working across runs.
import assert from 'node:assert/strict';
import { InstrumentStateKey, purchaseUpdate } from '../../workflows/messages';
import { testClient } from '../support/temporal';
import {
  authorize,
  FAST,
  saveHistory,
  snapshotOf,
  startInstrument,
  waitForState,
  useInstrumentEnv,
} from './instrument-env';

describe('continue-as-new (Temporal + worker + sandbox process)', function () {
  this.timeout(90_000);
  const env = useInstrumentEnv('can');

  it('carries the machine, balances and processed ids across runs; duplicates still answer the first result', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 100_000,
      settings: { ...FAST, continueAsNewAfterEvents: 60, processedIdLimit: 500 },
    });
    const ret = await authorize(env.sandbox, handle, input);
    const prepaidId = (ret as { tokens: { prepaidInstrumentId: string } }).tokens.prepaidInstrumentId;
    await waitForState(handle, 'active');

    const results = [];
    for (let i = 0; i < 40; i++) {
      const r = await handle.executeUpdate(purchaseUpdate, {
        args: [{ purchaseId: `p-${i}`, amount: 100 + 10 * i, currency: 'USD' }],
        updateId: `p-${i}`,
      });
      assert.equal(r.outcome, 'approved', `purchase ${i}: ${JSON.stringify(r)}`);
      results.push(r);
    }
    const spent = results.reduce((sum, r) => sum + r.amount, 0);
    const snap = await snapshotOf(handle);
    assert.ok(snap.continueAsNewCount >= 2, `continued as new ${snap.continueAsNewCount} times`);
    assert.equal(snap.state, 'active');
    assert.equal(snap.balance, 100_000 - spent);
    assert.equal(snap.purchasesApproved, 40);
    assert.equal((await env.sandbox.admin.prepaid(prepaidId)).balance.amount, 100_000 - spent);

    // The first purchase, asked again in a later run (Temporal's own dedup is per run): its first result.
    const again = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'p-0', amount: 100, currency: 'USD' }],
      updateId: 'p-0',
    });
    assert.equal(again.transactionId, results[0].transactionId);
    assert.equal(again.outcome, 'approved');
    assert.equal((await env.sandbox.admin.transactions(`${input.instrumentId}:pay:p-0`)).length, 1);
    assert.equal((await snapshotOf(handle)).balance, 100_000 - spent);

    // Runs chain by continue-as-new; the search attributes follow.
    const client = await testClient();
    const description = await client.workflow.getHandle(handle.workflowId).describe();
    assert.ok(description.runId);
    assert.equal(description.status.name, 'RUNNING');
    assert.equal(description.typedSearchAttributes.get(InstrumentStateKey), 'active');

    const next = await handle.executeUpdate(purchaseUpdate, {
      args: [{ purchaseId: 'after', amount: 5, currency: 'USD' }],
      updateId: 'after',
    });
    assert.equal(next.outcome, 'approved');
    // The latest run's history starts from a continued state: replayed like the others.
    await saveHistory(handle, 'prepaid-continued');
  });
});
