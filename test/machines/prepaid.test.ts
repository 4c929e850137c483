// Prepaid machine: every valid transition, and a table of events each state must refuse.
import assert from 'node:assert/strict';
import { handles, type InstrumentEvent } from '../../machines';
import { Drive } from './helpers';

const USD = { currency: 'USD', fundingAmount: 1000 };
const fresh = () => new Drive('prepaid', USD);
const funding = () => fresh().send({ type: 'AUTHORIZED', ref: 'fund:initial', amount: 1000 }, 'funding');
const active = () => funding().send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:initial' }, 'active');
const depleted = () =>
  active()
    .send({ type: 'PURCHASE', ref: 'purchase:all', amount: 1000 })
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:all' }, 'depleted');
const closed = () => active().send({ type: 'CLOSE' }, 'closed');

describe('prepaid machine', () => {
  describe('valid transitions', () => {
    it('awaitingAuthorization -> funding on AUTHORIZED with the initial funding', () => {
      funding().expect({ pending: [{ ref: 'fund:initial', operation: 'fund', amount: 1000 }], balance: 0 });
    });
    it('awaitingAuthorization -> closed on AUTHORIZATION_ABORTED / AUTHORIZATION_FAILED / CLOSE / EXPIRE', () => {
      fresh()
        .send({ type: 'AUTHORIZATION_ABORTED' }, 'closed')
        .expect({ closeReason: 'authorization aborted by the buyer' });
      fresh()
        .send({ type: 'AUTHORIZATION_FAILED', reason: 'NP' }, 'closed')
        .expect({ closeReason: 'authorization failed: NP' });
      fresh().send({ type: 'CLOSE', reason: 'never mind' }, 'closed').expect({ closeReason: 'never mind' });
      fresh().send({ type: 'EXPIRE' }, 'closed');
    });
    it('funding -> active on TRANSACTION_SUCCEEDED: the balance is the funded amount', () => {
      active().expect({ balance: 1000, funded: 1000, pending: [] });
    });
    it('funding -> fundingPending -> active when FPS answers Pending, then Success', () => {
      funding()
        .send({ type: 'TRANSACTION_PENDING', ref: 'fund:initial' }, 'fundingPending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:initial' }, 'active')
        .expect({ balance: 1000 });
    });
    it('funding -> closed, and fundingPending -> closed, when the initial funding fails', () => {
      funding()
        .send({ type: 'TRANSACTION_FAILED', ref: 'fund:initial', reason: 'InsufficientBalance' }, 'closed')
        .expect({
          closeReason: 'initial funding failed: InsufficientBalance',
          pending: [],
        });
      funding()
        .send({ type: 'TRANSACTION_PENDING', ref: 'fund:initial' }, 'fundingPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'fund:initial' }, 'closed');
    });
    it('active: PURCHASE holds the amount until FPS answers; success spends it', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 250 }, 'active')
        .expect({ balance: 750, spent: 0, pending: [{ ref: 'purchase:1', operation: 'purchase', amount: 250 }] })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
        .expect({ balance: 750, spent: 250, pending: [] });
    });
    it('active: a failed purchase releases its hold', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 250 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'purchase:1' }, 'active')
        .expect({ balance: 1000, spent: 0, pending: [] });
    });
    it('active -> depleted when the last open purchase spends the whole balance', () => {
      depleted().expect({ balance: 0, spent: 1000, pending: [] });
    });
    it('active stays active while another purchase could still fail; depletes on the last one', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 600 })
        .send({ type: 'PURCHASE', ref: 'purchase:2', amount: 400 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:2' }, 'depleted');
    });
    it('active -> depleted when a failure leaves a zero balance and nothing open', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 1000 })
        .send({ type: 'FUND', ref: 'fund:topup', amount: 500 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
        .send({ type: 'TRANSACTION_FAILED', ref: 'fund:topup' }, 'depleted');
    });
    it('active: FUND tops up once FPS confirms it', () => {
      active()
        .send({ type: 'FUND', ref: 'fund:topup-1', amount: 500 })
        .expect({ balance: 1000 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:topup-1' }, 'active')
        .expect({ balance: 1500, funded: 1500 });
    });
    it('active: REFUND within the refundable amount returns money to the balance', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' })
        .send({ type: 'REFUND', ref: 'refund:r1', amount: 100, refundable: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:r1' }, 'active')
        .expect({ balance: 800, refunded: 100 });
    });
    it('active -> closed on CLOSE or EXPIRE with nothing open', () => {
      closed();
      active().send({ type: 'EXPIRE' }, 'closed').expect({ closeReason: 'expired' });
    });
    it('depleted -> active when a top-up or refund succeeds', () => {
      depleted()
        .send({ type: 'FUND', ref: 'fund:topup', amount: 200 }, 'depleted')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'fund:topup' }, 'active')
        .expect({ balance: 200 });
      depleted()
        .send({ type: 'REFUND', ref: 'refund:r', amount: 50, refundable: 1000 }, 'depleted')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:r' }, 'active')
        .expect({ balance: 50 });
    });
    it('depleted: a failed top-up stays depleted', () => {
      depleted()
        .send({ type: 'FUND', ref: 'fund:topup', amount: 200 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'fund:topup' }, 'depleted');
    });
    it('depleted -> closed on CLOSE or EXPIRE', () => {
      depleted().send({ type: 'CLOSE' }, 'closed');
      depleted().send({ type: 'EXPIRE' }, 'closed');
    });
    it('closed is final', () => {
      assert.equal(closed().snapshot.status, 'done');
    });
    it('survives persist/restore (continue-as-new) with open operations', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 100 })
        .persistAndRestore()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
        .expect({ balance: 900, spent: 100 });
    });
  });

  describe('invalid transitions are refused', () => {
    const table: Array<[string, () => Drive, InstrumentEvent]> = [
      ['purchase before authorization', fresh, { type: 'PURCHASE', ref: 'purchase:1', amount: 1 }],
      ['fund before authorization', fresh, { type: 'FUND', ref: 'fund:x', amount: 1 }],
      ['AUTHORIZED without the funding operation', fresh, { type: 'AUTHORIZED' }],
      ['AUTHORIZED with a zero funding amount', fresh, { type: 'AUTHORIZED', ref: 'fund:initial', amount: 0 }],
      ['purchase during funding', funding, { type: 'PURCHASE', ref: 'purchase:1', amount: 1 }],
      ['close during funding', funding, { type: 'CLOSE' }],
      ['outcome for an unknown operation', funding, { type: 'TRANSACTION_SUCCEEDED', ref: 'fund:other' }],
      ['purchase above the balance', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 1001 }],
      ['purchase of zero', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 0 }],
      ['purchase of a negative amount', active, { type: 'PURCHASE', ref: 'purchase:1', amount: -5 }],
      ['purchase of a fractional amount', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 1.5 }],
      ['refund above what is refundable', active, { type: 'REFUND', ref: 'refund:1', amount: 101, refundable: 100 }],
      ['refund without a refundable purchase', active, { type: 'REFUND', ref: 'refund:1', amount: 1 }],
      ['fund of zero', active, { type: 'FUND', ref: 'fund:x', amount: 0 }],
      ['a second AUTHORIZED', active, { type: 'AUTHORIZED', ref: 'fund:again', amount: 5 }],
      ['settle (not a prepaid operation)', active, { type: 'SETTLE', ref: 'settle:1', amount: 1 }],
      ['capture (not a prepaid operation)', active, { type: 'CAPTURE', ref: 'capture:1', amount: 1 }],
      [
        'TRANSACTION_SUCCEEDED for an unknown operation',
        active,
        { type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:ghost' },
      ],
      ['TRANSACTION_FAILED for an unknown operation', active, { type: 'TRANSACTION_FAILED', ref: 'purchase:ghost' }],
      ['purchase when depleted', depleted, { type: 'PURCHASE', ref: 'purchase:2', amount: 1 }],
      ['purchase when closed', closed, { type: 'PURCHASE', ref: 'purchase:1', amount: 1 }],
      ['fund when closed', closed, { type: 'FUND', ref: 'fund:x', amount: 1 }],
      ['close when closed', closed, { type: 'CLOSE' }],
      ['authorize when closed', closed, { type: 'AUTHORIZED', ref: 'fund:initial', amount: 1 }],
    ];
    for (const [name, start, event] of table) {
      it(name, () => {
        start().refuse(event);
      });
    }

    it('a second purchase with the same ref while the first is open', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 10 })
        .refuse({ type: 'PURCHASE', ref: 'purchase:1', amount: 10 });
    });
    it('a purchase when depleted is a limit, not a state: depleted handles PURCHASE and its guard refuses it', () => {
      // The workflow answers a handled-but-guarded event with the limit (422 limit_exceeded), as it
      // does for a purchase over a non-zero balance; an unhandled one would be the state (409).
      const drive = depleted();
      assert.ok(handles(drive.snapshot, 'PURCHASE'), 'depleted should handle PURCHASE');
      drive.refuse({ type: 'PURCHASE', ref: 'purchase:2', amount: 1 });
    });
    it('a purchase that only the held amount would have covered', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 900 })
        .refuse({ type: 'PURCHASE', ref: 'purchase:2', amount: 200 });
    });
    it('close or expire while an operation is open', () => {
      const drive = active().send({ type: 'PURCHASE', ref: 'purchase:1', amount: 10 });
      drive.refuse({ type: 'CLOSE' }).refuse({ type: 'EXPIRE' });
    });
    it('a late or duplicated outcome never overwrites a terminal one', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 10 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' })
        .refuse({ type: 'TRANSACTION_FAILED', ref: 'purchase:1' })
        .refuse({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' })
        .expect({ balance: 990, spent: 10 });
    });
  });
});
