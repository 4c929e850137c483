// Prepaid balance rules in the machine: crossings counted once per fall below a threshold, the
// auto top-up's amount cut to the room under the funding limit, rules changed in any live state.
import assert from 'node:assert/strict';
import {
  autoTopUpAmount,
  dueTopUpCrossing,
  fundingHeadroom,
  lowBalanceCrossings,
  type PrepaidContext,
} from '../../machines';
import { Drive } from './helpers';

const LIMIT = 1000;
const withRules = (balanceRules: Record<string, unknown>) =>
  new Drive('prepaid', { currency: 'USD', fundingAmount: LIMIT, balanceRules })
    .send({ type: 'AUTHORIZED', ref: 'fund:initial', amount: LIMIT }, 'funding')
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:initial' }, 'active');
const ctx = (d: Drive) => d.snapshot.context as PrepaidContext;
let n = 0;
/** A purchase of `amount` that FPS approves. */
const buy = (d: Drive, amount: number) => {
  const ref = `purchase:p${++n}`;
  return d.send({ type: 'PURCHASE', ref, amount }).send({ type: 'TRANSACTION_SUCCEEDED', ref });
};

describe('prepaid machine: balance rules', () => {
  it('counts one low-balance crossing per fall below the threshold, none for the initial funding', () => {
    const d = withRules({ lowBalanceThreshold: 300 });
    assert.equal(lowBalanceCrossings(ctx(d)), 0, 'funding from 0 to 1000 is no crossing');
    buy(d, 600); // 400: still at or above
    assert.equal(lowBalanceCrossings(ctx(d)), 0);
    buy(d, 100); // 300: equal is not below
    assert.equal(lowBalanceCrossings(ctx(d)), 0);
    buy(d, 1); // 299: crossing 1
    assert.equal(lowBalanceCrossings(ctx(d)), 1);
    buy(d, 50); // still below: no new crossing
    assert.equal(lowBalanceCrossings(ctx(d)), 1);
    d.send({ type: 'FUND', ref: 'fund:f1', amount: 500 }).send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:f1' });
    assert.equal(lowBalanceCrossings(ctx(d)), 1, 'rising above is no crossing');
    buy(d, 600);
    assert.equal(lowBalanceCrossings(ctx(d)), 2, 'falling again is the second');
    d.persistAndRestore();
    assert.equal(lowBalanceCrossings(ctx(d)), 2);
  });

  it('a declined purchase gives its hold back: the balance rises again, the next fall is a new crossing', () => {
    const d = withRules({ lowBalanceThreshold: 500 });
    d.send({ type: 'PURCHASE', ref: 'purchase:x', amount: 600 });
    assert.equal(lowBalanceCrossings(ctx(d)), 1, 'the hold lowers the spendable balance');
    d.send({ type: 'TRANSACTION_FAILED', ref: 'purchase:x' });
    assert.equal(ctx(d).balance, 1000);
    buy(d, 600);
    assert.equal(lowBalanceCrossings(ctx(d)), 2);
  });

  it('rules set later take the balance as it is: already below is no crossing until it rises and falls', () => {
    const d = withRules({});
    buy(d, 900);
    d.send({ type: 'SET_BALANCE_RULES', lowBalanceThreshold: 500 });
    assert.equal(lowBalanceCrossings(ctx(d)), 0);
    d.send({ type: 'FUND', ref: 'fund:f1', amount: 800 }).send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:f1' });
    buy(d, 500);
    assert.equal(lowBalanceCrossings(ctx(d)), 1);
    d.send({ type: 'SET_BALANCE_RULES', lowBalanceThreshold: null });
    assert.equal(ctx(d).watch?.rules.lowBalanceThreshold, null);
    buy(d, 300);
    assert.equal(lowBalanceCrossings(ctx(d)), 1, 'no rule, no crossing');
  });

  it('refuses malformed rules, and takes none once closed', () => {
    const d = withRules({});
    d.refuse({ type: 'SET_BALANCE_RULES', lowBalanceThreshold: 0 });
    d.refuse({ type: 'SET_BALANCE_RULES', lowBalanceThreshold: 1.5 });
    d.refuse({ type: 'SET_BALANCE_RULES', autoTopUp: { below: 100, amount: -1 } });
    d.send({ type: 'CLOSE' }, 'closed').refuse({ type: 'SET_BALANCE_RULES', lowBalanceThreshold: 10 });
  });

  it('auto top-up: one due crossing, its amount cut to the room under the funding limit', () => {
    const d = withRules({ autoTopUp: { below: 500, amount: 800 } });
    assert.equal(dueTopUpCrossing(ctx(d)), undefined);
    buy(d, 700); // 300 < 500: crossing 1
    assert.equal(dueTopUpCrossing(ctx(d)), 1);
    assert.equal(fundingHeadroom(ctx(d)), 700);
    assert.equal(autoTopUpAmount(ctx(d)), 700, 'min(800, 1000 - 300)');
    // A purchase still held counts as spent money FPS has not taken yet: it narrows the room.
    d.send({ type: 'PURCHASE', ref: 'purchase:held', amount: 100 });
    assert.equal(autoTopUpAmount(ctx(d)), 700, 'FPS still counts the held 100 in its balance');
    d.send({ type: 'AUTO_TOP_UP', ref: 'fund:wf:auto-1', crossing: 1 });
    assert.equal(dueTopUpCrossing(ctx(d)), undefined, 'handled once');
    assert.deepEqual(
      ctx(d).pending.find((op) => op.ref === 'fund:wf:auto-1'),
      { ref: 'fund:wf:auto-1', operation: 'fund', amount: 700 },
    );
    d.refuse({ type: 'AUTO_TOP_UP', ref: 'fund:wf:auto-1b', crossing: 1 });
    d.send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:held' });
    d.send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:wf:auto-1' });
    assert.equal(ctx(d).balance, 900);
    assert.ok(ctx(d).balance <= LIMIT);
  });

  it('auto top-up with no room is skipped: the crossing is handled, nothing is funded', () => {
    const d = withRules({ autoTopUp: { below: 950, amount: 500 } });
    d.send({ type: 'PURCHASE', ref: 'purchase:small', amount: 100 }); // held: 900 < 950
    assert.equal(dueTopUpCrossing(ctx(d)), 1);
    assert.equal(autoTopUpAmount(ctx(d)), 0, '900 + 100 held = the limit');
    d.send({ type: 'AUTO_TOP_UP', ref: 'fund:wf:auto-1', crossing: 1 });
    assert.equal(dueTopUpCrossing(ctx(d)), undefined);
    assert.deepEqual(
      ctx(d).pending.map((op) => op.ref),
      ['purchase:small'],
    );
  });

  it('crossings not yet topped up merge into the latest one', () => {
    const d = withRules({ autoTopUp: { below: 500, amount: 100 } });
    buy(d, 600); // crossing 1
    d.send({ type: 'REFUND', ref: 'refund:r1', amount: 200, refundable: 600 });
    d.send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:r1' }); // 600: above again
    buy(d, 200); // crossing 2
    assert.equal(dueTopUpCrossing(ctx(d)), 2);
    d.refuse({ type: 'AUTO_TOP_UP', ref: 'fund:wf:auto-3', crossing: 3 });
    d.send({ type: 'AUTO_TOP_UP', ref: 'fund:wf:auto-2', crossing: 2 });
    assert.equal(dueTopUpCrossing(ctx(d)), undefined);
  });
});
