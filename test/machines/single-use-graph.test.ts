// Single-use machine, every path (xstate/graph): see graph-harness.ts. Authorized 2.00, in pay and
// in reserve mode: purchases of the whole amount or half of it, captures of the whole reservation
// or half of it, voids, refunds of what is left or 0.50, plus amounts one cent too high (refused).
// The context is small, so shortest and simple paths run over the same (exact) graph.
import assert from 'node:assert/strict';
import type { InstrumentEvent, InstrumentMachineSnapshot, SingleUseContext } from '../../machines';
import { exploreMachine, LIFECYCLE, outcomesOfPending, report, type GraphSpec } from './graph-harness';

const AMOUNT = 200;
const ctx = (s: InstrumentMachineSnapshot) => s.context as SingleUseContext;
const sumPending = (c: SingleUseContext, operation: string) =>
  c.pending.filter((op) => op.operation === operation).reduce((sum, op) => sum + op.amount, 0);
const refundableOf = (c: SingleUseContext) => c.charged - c.refunded - sumPending(c, 'refund');

const PAY_STATES = ['paying', 'paymentPending', 'paid'];
const RESERVE_STATES = ['reserving', 'reservationPending', 'reserved', 'capturing', 'capturePending', 'voiding'];
const RESERVE_ONLY = [...RESERVE_STATES, 'captured', 'voided'];

interface Bounds {
  /** Purchase and capture amounts also try half of the whole. */
  halves: boolean;
  refundRefs: string[];
}
const SHORTEST: Bounds = { halves: true, refundRefs: ['refund:a', 'refund:b'] };
const SIMPLE: Bounds = { halves: false, refundRefs: ['refund:a'] };

function eventsWithin(snapshot: InstrumentMachineSnapshot, bounds: Bounds): InstrumentEvent[] {
  const c = ctx(snapshot);
  const half = (n: number) => (bounds.halves ? [Math.floor(n / 2)] : []);
  const events: InstrumentEvent[] = [...LIFECYCLE, { type: 'AUTHORIZED' }];
  for (const amount of [AMOUNT, ...half(AMOUNT), AMOUNT + 1])
    events.push({ type: 'PURCHASE', ref: 'purchase:p', amount });
  for (const amount of new Set([c.reserved, ...half(c.reserved), c.reserved + 1]))
    events.push({ type: 'CAPTURE', ref: 'capture:c', amount });
  events.push({ type: 'VOID', ref: 'void:v' });
  const refundable = refundableOf(c);
  for (const ref of bounds.refundRefs)
    for (const amount of new Set([refundable, 50, refundable + 1])) events.push({ type: 'REFUND', ref, amount });
  return [...events, ...outcomesOfPending(snapshot)];
}

const specFor = (mode: 'pay' | 'reserve'): GraphSpec => ({
  kind: 'single-use',
  input: { currency: 'USD', amount: AMOUNT, mode },
  events: (snapshot) => eventsWithin(snapshot, SHORTEST),
  simpleEvents: (snapshot) => eventsWithin(snapshot, SIMPLE),
  behaviourClass: (s) => [s.value, s.context],
  opens(event, before) {
    const c = ctx(before);
    switch (event.type) {
      case 'PURCHASE':
        return { ref: event.ref, operation: 'purchase', amount: event.amount };
      case 'CAPTURE':
        return { ref: event.ref, operation: 'capture', amount: event.amount };
      case 'VOID':
        return { ref: event.ref, operation: 'void', amount: c.reserved };
      case 'REFUND':
        return { ref: event.ref, operation: 'refund', amount: event.amount };
      default:
        return undefined;
    }
  },
  invariants(snapshot, tally) {
    const c = ctx(snapshot);
    const state = snapshot.value as string;
    assert.ok(c.charged <= c.amount && c.reserved <= c.amount, 'charged or reserved above the authorized amount');
    assert.ok(c.refunded + sumPending(c, 'refund') <= c.charged, 'refunds above the charge');
    assert.equal(c.refunded, tally.succeeded.refund, 'refunded = succeeded refunds');
    assert.ok(sumPending(c, 'purchase') <= AMOUNT && c.pending.length <= 2, 'one purchase at most');
    if (mode === 'pay') {
      assert.ok(!RESERVE_ONLY.includes(state), `pay mode in ${state}`);
      assert.equal(c.charged, tally.succeeded.purchase, 'charged = the succeeded payment');
      assert.equal(c.reserved, 0, 'pay mode reserved money');
    } else {
      assert.ok(!PAY_STATES.includes(state), `reserve mode in ${state}`);
      assert.equal(c.charged, tally.succeeded.capture, 'charged = the succeeded capture');
      assert.ok(c.charged <= tally.succeeded.purchase, 'captured more than was reserved');
      const released = tally.succeeded.capture + tally.succeeded.void > 0;
      assert.equal(
        c.reserved,
        released ? 0 : tally.succeeded.purchase,
        'reserved = the reservation until captured or voided',
      );
    }
    if (state === 'refunded') assert.ok(c.charged > 0 && c.refunded === c.charged, 'refunded but not in full');
    if (state === 'voided' || state === 'declined') assert.deepEqual([c.charged, c.reserved], [0, 0], state);
    if (['paid', 'captured', 'partiallyRefunded'].includes(state)) assert.ok(c.charged > 0, `${state} with no charge`);
    if (state === 'partiallyRefunded') assert.ok(c.refunded > 0 && c.refunded < c.charged, 'partially refunded');
  },
});

describe('single-use machine: every path (xstate/graph)', () => {
  it('pay and reserve mode: the shortest path to every state and every simple path keep the invariants; every transition is covered', () => {
    const result = exploreMachine([specFor('pay'), specFor('reserve')]);
    report('single-use', result);
    assert.deepEqual(result.statesReached, result.states, 'every state reached');
    assert.deepEqual(result.uncovered, [], 'every transition covered');
  });
});
