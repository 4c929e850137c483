// Postpaid machine, every path (xstate/graph): see graph-harness.ts. Credit limit 2.00, global
// amount limit 2.50 (the third 1.00 purchase is refused), one failed settlement tolerated. Purchases and refunds of 1.00, settlements of
// the whole debt or 1.00, write-offs of the debt, plus amounts one cent too high (refused).
// Shortest paths: two purchase keys, partial settlements, refunds. Simple paths: one purchase of
// 1.00, settlements of the whole debt, no refunds (each of these multiplies the simple paths).
import assert from 'node:assert/strict';
import type { InstrumentEvent, InstrumentMachineSnapshot, PostpaidContext } from '../../machines';
import { exploreMachine, LIFECYCLE, outcomesOfPending, report, type GraphSpec } from './graph-harness';

const UNIT = 100;
const INPUT = { currency: 'USD', creditLimit: 2 * UNIT, globalAmountLimit: 2.5 * UNIT, settlementRetryLimit: 1 };
interface Bounds {
  charged: number;
  purchaseRefs: string[];
  /** Also settle 1.00 of a larger debt (not only all of it). */
  partialSettlements: boolean;
  /** Offer refunds (and expiry) at all. */
  refunds: boolean;
}
const SHORTEST: Bounds = {
  charged: INPUT.globalAmountLimit,
  purchaseRefs: ['purchase:a', 'purchase:b'],
  partialSettlements: true,
  refunds: true,
};
const SIMPLE: Bounds = {
  charged: UNIT,
  purchaseRefs: ['purchase:a'],
  partialSettlements: false,
  refunds: false,
};

const ctx = (s: InstrumentMachineSnapshot) => s.context as PostpaidContext;
const sumPending = (c: PostpaidContext, operation: string) =>
  c.pending.filter((op) => op.operation === operation).reduce((sum, op) => sum + op.amount, 0);
/** What the workflow would pass as `refundable`: confirmed purchases not yet refunded nor being refunded. */
const refundableOf = (c: PostpaidContext) => c.totalCharged - c.held - c.refunded - sumPending(c, 'refund');
/** Failed settlements past this many stop being offered: a delinquent account could fail forever. */
const maxFailures = INPUT.settlementRetryLimit + 2;

function eventsWithin(snapshot: InstrumentMachineSnapshot, bounds: Bounds): InstrumentEvent[] {
  const c = ctx(snapshot);
  const events: InstrumentEvent[] = [...LIFECYCLE, { type: 'AUTHORIZED' }];
  if (c.totalCharged < bounds.charged) {
    for (const ref of bounds.purchaseRefs) {
      events.push(
        { type: 'PURCHASE', ref, amount: UNIT },
        { type: 'PURCHASE', ref, amount: c.creditLimit - c.debt - c.held + 1 },
      );
    }
  }
  if (c.settlementFailures < maxFailures) {
    const amounts = bounds.partialSettlements ? [c.debt, UNIT, c.debt + 1] : [c.debt, c.debt + 1];
    for (const amount of new Set(amounts)) events.push({ type: 'SETTLE', ref: 'settle:a', amount });
  }
  events.push({ type: 'WRITE_OFF', ref: 'writeOff:a', amount: c.debt });
  if (bounds.refunds) {
    const refundable = refundableOf(c);
    events.push(
      { type: 'REFUND', ref: 'refund:a', amount: UNIT, refundable },
      { type: 'REFUND', ref: 'refund:b', amount: refundable + 1, refundable },
    );
  }
  return [...events, ...outcomesOfPending(snapshot)];
}

/** Debt from the path's succeeded operations, in order: purchases add, the rest take away (never below 0). */
function expectedDebt(history: Array<{ operation: string; amount: number }>): number {
  let debt = 0;
  for (const op of history) debt = op.operation === 'purchase' ? debt + op.amount : Math.max(0, debt - op.amount);
  return debt;
}

const spec: GraphSpec = {
  kind: 'postpaid',
  input: INPUT,
  events: (snapshot) => eventsWithin(snapshot, SHORTEST),
  simpleEvents: (snapshot) => eventsWithin(snapshot, SIMPLE),
  // What the guards and the bounds read.
  behaviourClass: (s) => {
    const c = ctx(s);
    return [
      s.value,
      c.pending,
      c.debt,
      c.held,
      c.totalCharged,
      refundableOf(c),
      c.settlementFailures,
      c.expired,
      c.resumeState,
    ];
  },
  opens(event) {
    switch (event.type) {
      case 'PURCHASE':
        return { ref: event.ref, operation: 'purchase', amount: event.amount };
      case 'SETTLE':
        return { ref: event.ref, operation: 'settle', amount: event.amount };
      case 'WRITE_OFF':
        return { ref: event.ref, operation: 'writeOff', amount: event.amount };
      case 'REFUND':
        return { ref: event.ref, operation: 'refund', amount: event.amount };
      default:
        return undefined;
    }
  },
  invariants(snapshot, tally, event) {
    const c = ctx(snapshot);
    const state = snapshot.value as string;
    assert.ok(c.debt >= 0, `debt ${c.debt} is negative`);
    assert.equal(c.held, sumPending(c, 'purchase'), 'held = open purchases');
    assert.ok(c.debt + c.held <= c.creditLimit, `debt ${c.debt} + held ${c.held} above the credit limit`);
    assert.ok(c.totalCharged <= INPUT.globalAmountLimit, 'total charged above the global amount limit');
    assert.equal(c.totalCharged, tally.succeeded.purchase + c.held, 'total charged = succeeded + open purchases');
    assert.equal(c.settled, tally.succeeded.settle, 'settled = succeeded settlements');
    assert.equal(c.writtenOff, tally.succeeded.writeOff, 'written off = succeeded write-offs');
    assert.equal(c.refunded, tally.succeeded.refund, 'refunded = succeeded refunds');
    assert.equal(c.debt, expectedDebt(tally.history), 'debt = purchases - settlements - write-offs - refunds');
    assert.ok(c.refunded + sumPending(c, 'refund') <= tally.succeeded.purchase, 'refunds within what was charged');
    const collecting = c.pending.filter((op) => op.operation === 'settle' || op.operation === 'writeOff');
    assert.ok(collecting.length <= 1, 'two settlements or write-offs at once');
    const settling = state === 'settling' || state === 'settlementPending';
    assert.equal(settling, sumPending(c, 'settle') > 0, `${state}: a settlement is open iff settling`);
    assert.equal(
      state === 'writingOff',
      c.pending.some((op) => op.operation === 'writeOff'),
      'write-off open iff writingOff',
    );
    if (state === 'delinquent')
      assert.ok(c.settlementFailures > INPUT.settlementRetryLimit, 'delinquent before the retries ran out');
    if (state === 'closed') assert.deepEqual([c.debt, c.held], [0, 0], 'closed with debt or held purchases');
    if (state === 'writingOff') assert.equal(c.pending.length, 1, 'a write-off with something else open');
    if (event.type === 'PURCHASE') assert.ok(!c.expired, 'a purchase accepted after expiry');
  },
};

describe('postpaid machine: every path (xstate/graph)', () => {
  it('the shortest path to every state and every simple path keep the invariants; every transition is covered', () => {
    const result = exploreMachine([spec]);
    report('postpaid', result);
    assert.deepEqual(result.statesReached, result.states, 'every state reached');
    assert.deepEqual(result.uncovered, [], 'every transition covered');
  });
});
