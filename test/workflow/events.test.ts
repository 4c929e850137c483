// The workflow's own merchant events (lifecycle, balance.low) and the prepaid auto top-up, against a
// real Temporal server, worker and sandbox process, read back from the worker's ledger store: each
// fact once, in the order it happened, with the money events of the same instrument between them.
import assert from 'node:assert/strict';
import { callerReferenceFor } from '../../fps/caller-reference';
import type { EventRow } from '../../store/schema';
import {
  closeUpdate,
  purchaseUpdate,
  setBalanceRulesUpdate,
  settleUpdate,
  UpdateRejection,
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

describe('workflow events: lifecycle, balance.low, auto top-up', function () {
  this.timeout(60_000);
  const env = useInstrumentEnv('events');

  const eventsOf = (instrumentId: string): Promise<EventRow[]> =>
    env.worker.ledger.events({ instrumentId, limit: 1000 });
  const typesOf = async (instrumentId: string) => (await eventsOf(instrumentId)).map((e) => e.type);
  /** Waits until the instrument's events include `types` (in this order, others between them allowed). */
  async function waitForEvents(instrumentId: string, types: string[], timeoutMs = 10_000): Promise<EventRow[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = await eventsOf(instrumentId);
      let at = 0;
      for (const e of events) if (e.type === types[at]) at++;
      if (at === types.length) return events;
      if (Date.now() > deadline)
        throw new Error(
          `events of ${instrumentId}: ${events.map((e) => e.type).join(', ')}; waited for ${types.join(', ')}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const count = (events: EventRow[], type: string) => events.filter((e) => e.type === type).length;

  it('prepaid: authorized, funding, activated, balance.low once per crossing, auto top-up within the limit, closed', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 5000,
      settings: FAST,
      balanceRules: { lowBalanceThreshold: 2000 },
    });
    const id = input.instrumentId;
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'active');
    let events = await waitForEvents(id, ['instrument.authorized', 'funding.succeeded', 'instrument.activated']);
    assert.deepEqual(
      events.map((e) => e.type),
      ['instrument.authorized', 'funding.succeeded', 'instrument.activated'],
    );
    assert.deepEqual(
      events.map((e) => e.sequence),
      [1, 2, 3],
    );
    const activated = JSON.parse(events[2].data) as Record<string, unknown>;
    assert.equal(activated.state, 'active');
    assert.deepEqual(activated.balance, { amount: '50.00', currency: 'USD' });

    const buy = (purchaseId: string, amount: number) =>
      handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId, amount, currency: 'USD' }], updateId: purchaseId });
    await buy('p1', 2500); // 25.00: at or above 20.00
    await buy('p2', 600); // 19.00: crossing 1
    await buy('p3', 100); // 18.00: still below
    // Auto top-up added now: below 15.00, fund 40.00 — cut to the room under the 50.00 limit.
    const rules = await handle.executeUpdate(setBalanceRulesUpdate, {
      args: [{ autoTopUp: { below: 1500, amount: 4000 } }],
    });
    assert.deepEqual(rules.balanceRules, {
      lowBalanceThreshold: 2000,
      autoTopUp: { below: 1500, amount: 4000 },
      lowBalanceCrossings: 1,
      autoTopUpCrossings: 0,
    });
    await buy('p4', 500); // 13.00: auto top-up crossing 1 → fund min(40.00, 50.00 - 13.00) = 37.00
    const topUpRef = callerReferenceFor(id, 'fund', 'wf:auto-1');
    const funded = await waitForSnapshot(handle, (s) => s.balance === 5000 && s.pending.length === 0);
    assert.equal(funded.balance, 5000, 'never above the funding limit');
    const atFps = await env.sandbox.admin.transactions(topUpRef);
    assert.equal(atFps.length, 1);
    assert.equal(atFps[0].amount.amount, 3700);
    events = await waitForEvents(id, ['balance.low', 'funding.succeeded']);
    assert.equal(count(events, 'balance.low'), 1);
    await buy('p5', 3500); // 15.00: crossing 2 of the low threshold, not of the top-up (15.00 is not below 15.00)
    await buy('p6', 1); // 14.99: top-up crossing 2 → fund min(40.00, 35.01) = 35.01
    await waitForSnapshot(handle, (s) => s.balance === 5000 && s.pending.length === 0);
    assert.equal(
      (await env.sandbox.admin.transactions(callerReferenceFor(id, 'fund', 'wf:auto-2')))[0]?.amount.amount,
      3501,
    );
    events = await waitForEvents(id, ['balance.low', 'balance.low']);
    assert.equal(count(events, 'balance.low'), 2);
    assert.deepEqual(
      events.filter((e) => e.type === 'balance.low').map((e) => (JSON.parse(e.data) as { crossing: number }).crossing),
      [1, 2],
    );
    assert.equal(count(events, 'funding.succeeded'), 3, 'initial funding and two top-ups');

    await handle.executeUpdate(closeUpdate, { args: [{ reason: 'done' }] });
    events = await waitForEvents(id, ['instrument.closed']);
    const closed = JSON.parse(events.at(-1)!.data) as Record<string, unknown>;
    assert.equal(closed.state, 'closed');
    assert.equal(closed.closeReason, 'done');
    for (const type of ['instrument.authorized', 'instrument.activated', 'instrument.closed'])
      assert.equal(count(events, type), 1, type);
    // Sequences gap-free per instrument.
    assert.deepEqual(
      events.map((e) => e.sequence),
      events.map((_, i) => i + 1),
    );
    await expectRejection(
      () => handle.executeUpdate(setBalanceRulesUpdate, { args: [{ lowBalanceThreshold: 100 }] }),
      UpdateRejection.InvalidState,
    );
    await saveHistory(handle, 'prepaid-events');
  });

  it('balance rules: refused on other kinds and when malformed, nothing changes', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'postpaid',
      creditLimit: 1000,
      settings: FAST,
    });
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'active');
    await expectRejection(
      () => handle.executeUpdate(setBalanceRulesUpdate, { args: [{ lowBalanceThreshold: 100 }] }),
      UpdateRejection.InvalidRequest,
    );
    const prepaid = await startInstrument(env.worker.taskQueue, {
      type: 'prepaid',
      fundingAmount: 1000,
      settings: FAST,
    });
    for (const bad of [{ lowBalanceThreshold: 0 }, { lowBalanceThreshold: 1.5 }, { autoTopUp: { below: 100 } }]) {
      await expectRejection(
        () => prepaid.handle.executeUpdate(setBalanceRulesUpdate, { args: [bad as never] }),
        UpdateRejection.InvalidRequest,
      );
    }
    assert.equal((await snapshotOf(prepaid.handle)).balanceRules, undefined);
  });

  it('postpaid: instrument.delinquent once when settlements fail past the limit; closed after the write-off', async () => {
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
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'active');
    // A debt ending in .52 makes SettleDebt fail (sandbox magic amount).
    await handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'a', amount: 1025, currency: 'USD' }] });
    await handle.executeUpdate(purchaseUpdate, { args: [{ purchaseId: 'b', amount: 27, currency: 'USD' }] });
    await handle.executeUpdate(settleUpdate, { args: [{ settlementId: 'try-1' }], updateId: 'try-1' });
    await waitForState(handle, 'closed', 15_000);
    const events = await waitForEvents(id, [
      'instrument.authorized',
      'instrument.activated',
      'purchase.approved',
      'purchase.approved',
      'settlement.failed',
      'settlement.failed',
      'instrument.delinquent',
      'debt.written_off',
      'instrument.closed',
    ]);
    assert.equal(count(events, 'instrument.delinquent'), 1);
    assert.equal(count(events, 'instrument.closed'), 1);
    const delinquent = JSON.parse(events.find((e) => e.type === 'instrument.delinquent')!.data) as Record<
      string,
      unknown
    >;
    assert.equal(delinquent.state, 'delinquent');
    assert.deepEqual(delinquent.debt, { amount: '10.52', currency: 'USD' });
    await saveHistory(handle, 'postpaid-events');
  });

  it('expiry: instrument.expired, then instrument.closed', async () => {
    const { handle, input } = await startInstrument(env.worker.taskQueue, {
      type: 'single-use',
      amount: 1000,
      settings: { ...FAST, expiresAt: Date.now() + 2_500 },
    });
    await authorize(env.sandbox, handle, input);
    await waitForState(handle, 'closed', 15_000);
    const events = await waitForEvents(input.instrumentId, ['instrument.expired', 'instrument.closed']);
    assert.deepEqual(await typesOf(input.instrumentId), [
      'instrument.authorized',
      'instrument.activated',
      'instrument.expired',
      'instrument.closed',
    ]);
    assert.equal((JSON.parse(events.at(-1)!.data) as { closeReason: string }).closeReason, 'expired');
  });
});
