// Postpaid machine: every valid transition, and a table of events each state must refuse.
import assert from 'node:assert/strict';
import type { InstrumentEvent } from '../../machines';
import { Drive } from './helpers';

const INPUT = { currency: 'USD', creditLimit: 1000, globalAmountLimit: 1500, settlementRetryLimit: 2 };
const fresh = () => new Drive('postpaid', INPUT);
const active = () => fresh().send({ type: 'AUTHORIZED' }, 'active');
/** Active with 400 of confirmed debt. */
const indebted = () =>
  active()
    .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 400 })
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
    .expect({ debt: 400, held: 0, totalCharged: 400 });
const settling = () => indebted().send({ type: 'SETTLE', ref: 'settle:1', amount: 400 }, 'settling');
const failSettlement = (drive: Drive, n: number) =>
  drive
    .send({ type: 'SETTLE', ref: `settle:${n}`, amount: 400 }, 'settling')
    .send({ type: 'TRANSACTION_FAILED', ref: `settle:${n}` });
/** Three failed settlements with a retry limit of 2. */
const delinquent = () => {
  const drive = indebted();
  failSettlement(drive, 1);
  failSettlement(drive, 2);
  failSettlement(drive, 3);
  assert.equal(drive.state, 'delinquent');
  return drive;
};
const writingOff = () => delinquent().send({ type: 'WRITE_OFF', ref: 'writeOff:w', amount: 400 }, 'writingOff');
const closed = () => active().send({ type: 'CLOSE' }, 'closed');

describe('postpaid machine', () => {
  describe('valid transitions', () => {
    it('awaitingAuthorization -> active on AUTHORIZED', () => {
      active().expect({ debt: 0, creditLimit: 1000, globalAmountLimit: 1500 });
    });
    it('awaitingAuthorization -> closed on AUTHORIZATION_ABORTED / AUTHORIZATION_FAILED / CLOSE / EXPIRE', () => {
      fresh().send({ type: 'AUTHORIZATION_ABORTED' }, 'closed');
      fresh().send({ type: 'AUTHORIZATION_FAILED', reason: 'NP' }, 'closed');
      fresh().send({ type: 'CLOSE' }, 'closed');
      fresh().send({ type: 'EXPIRE' }, 'closed');
    });
    it('active: a purchase is held against the limit, then becomes debt', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 300 })
        .expect({ held: 300, debt: 0, totalCharged: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:1' }, 'active')
        .expect({ held: 0, debt: 300 });
    });
    it('active: a declined purchase releases its hold and its share of the global limit', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 300 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'purchase:1' }, 'active')
        .expect({ held: 0, debt: 0, totalCharged: 0 });
    });
    it('a purchase found already counted in the record is withdrawn: as if never applied, in any state that holds it', () => {
      indebted()
        .send({ type: 'PURCHASE', ref: 'purchase:2', amount: 300 })
        .send({ type: 'PURCHASE_WITHDRAWN', ref: 'purchase:2' }, 'active')
        .expect({ held: 0, debt: 400, totalCharged: 400, pending: [] })
        // Ended: a late answer for it, or a second withdrawal, changes nothing.
        .refuse({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:2' })
        .refuse({ type: 'PURCHASE_WITHDRAWN', ref: 'purchase:2' });
      settling()
        .send({ type: 'PURCHASE', ref: 'purchase:2', amount: 100 })
        .send({ type: 'PURCHASE_WITHDRAWN', ref: 'purchase:2' }, 'settling')
        .expect({ held: 0, debt: 400, totalCharged: 400 })
        // Only a purchase is withdrawn: the settlement stays open.
        .refuse({ type: 'PURCHASE_WITHDRAWN', ref: 'settle:1' });
    });
    it('active: a purchase up to exactly the credit limit is accepted', () => {
      active().send({ type: 'PURCHASE', ref: 'purchase:1', amount: 1000 }).expect({ held: 1000 });
    });
    it('active -> settling -> active when the settlement succeeds', () => {
      settling()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' }, 'active')
        .expect({ debt: 0, settled: 400, settlementFailures: 0 });
    });
    it('settling -> settlementPending -> active on Pending then Success', () => {
      settling()
        .send({ type: 'TRANSACTION_PENDING', ref: 'settle:1' }, 'settlementPending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' }, 'active')
        .expect({ debt: 0 });
    });
    it('settling -> active when a settlement fails within the retry limit', () => {
      settling()
        .send({ type: 'TRANSACTION_FAILED', ref: 'settle:1' }, 'active')
        .expect({ debt: 400, settlementFailures: 1 });
    });
    it('settlementPending -> active on Failure within the retry limit', () => {
      settling()
        .send({ type: 'TRANSACTION_PENDING', ref: 'settle:1' }, 'settlementPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'settle:1' }, 'active')
        .expect({ settlementFailures: 1 });
    });
    it('settling -> delinquent once failures exceed the retry limit', () => {
      delinquent().expect({ settlementFailures: 3, debt: 400 });
    });
    it('settlementPending -> delinquent once failures exceed the retry limit', () => {
      const drive = indebted();
      failSettlement(drive, 1);
      failSettlement(drive, 2);
      drive
        .send({ type: 'SETTLE', ref: 'settle:3', amount: 400 })
        .send({ type: 'TRANSACTION_PENDING', ref: 'settle:3' }, 'settlementPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'settle:3' }, 'delinquent');
    });
    it('a successful settlement resets the failure count', () => {
      const drive = indebted();
      failSettlement(drive, 1);
      drive
        .send({ type: 'SETTLE', ref: 'settle:2', amount: 400 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:2' }, 'active');
      drive.expect({ settlementFailures: 0, debt: 0 });
    });
    it('settling and settlementPending still accept purchases and their outcomes', () => {
      settling()
        .send({ type: 'PURCHASE', ref: 'purchase:2', amount: 100 }, 'settling')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:2' }, 'settling')
        .send({ type: 'TRANSACTION_PENDING', ref: 'settle:1' }, 'settlementPending')
        .send({ type: 'PURCHASE', ref: 'purchase:3', amount: 100 }, 'settlementPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'purchase:3' }, 'settlementPending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' }, 'active')
        .expect({ debt: 100 });
    });
    it('a partial settlement leaves the rest of the debt', () => {
      indebted()
        .send({ type: 'SETTLE', ref: 'settle:p', amount: 150 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:p' }, 'active')
        .expect({ debt: 250 });
    });
    it('delinquent -> settling -> active when a later settlement succeeds', () => {
      delinquent()
        .send({ type: 'SETTLE', ref: 'settle:late', amount: 400 }, 'settling')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:late' }, 'active')
        .expect({ debt: 0, settlementFailures: 0 });
    });
    it('delinquent -> writingOff -> closed', () => {
      writingOff()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'writeOff:w' }, 'closed')
        .expect({ debt: 0, writtenOff: 400 });
    });
    it('writingOff -> delinquent when the write-off fails', () => {
      writingOff().send({ type: 'TRANSACTION_FAILED', ref: 'writeOff:w' }, 'delinquent').expect({ debt: 400 });
    });
    it('active -> writingOff on demand; a failed write-off returns to active', () => {
      indebted()
        .send({ type: 'WRITE_OFF', ref: 'writeOff:x', amount: 400 }, 'writingOff')
        .send({ type: 'TRANSACTION_FAILED', ref: 'writeOff:x' }, 'active');
      indebted()
        .send({ type: 'WRITE_OFF', ref: 'writeOff:x', amount: 400 }, 'writingOff')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'writeOff:x' }, 'closed');
    });
    it('active: refunds reduce the debt once confirmed', () => {
      indebted()
        .send({ type: 'REFUND', ref: 'refund:r', amount: 100, refundable: 400 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:r' }, 'active')
        .expect({ debt: 300, refunded: 100 });
    });
    it('delinquent: a refund that clears the debt lets it close', () => {
      delinquent()
        .send({ type: 'REFUND', ref: 'refund:r', amount: 400, refundable: 400 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:r' }, 'delinquent')
        .send({ type: 'CLOSE' }, 'closed');
    });
    it('active -> closed on CLOSE when nothing is owed', () => {
      closed();
      indebted()
        .send({ type: 'SETTLE', ref: 'settle:1', amount: 400 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' })
        .send({ type: 'CLOSE' }, 'closed');
    });
    it('EXPIRE closes an account that owes nothing', () => {
      active().send({ type: 'EXPIRE' }, 'closed');
    });
    it('EXPIRE with debt stops purchases; the settlement that clears it closes the account', () => {
      indebted()
        .send({ type: 'EXPIRE' }, 'active')
        .expect({ expired: true })
        .refuse({ type: 'PURCHASE', ref: 'purchase:9', amount: 1 })
        .send({ type: 'SETTLE', ref: 'settle:final', amount: 400 }, 'settling')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:final' }, 'closed');
    });
    it('EXPIRE is remembered while settling, settlementPending or delinquent', () => {
      settling().send({ type: 'EXPIRE' }, 'settling').expect({ expired: true });
      settling().send({ type: 'TRANSACTION_PENDING', ref: 'settle:1' }).send({ type: 'EXPIRE' }, 'settlementPending');
      delinquent().send({ type: 'EXPIRE' }, 'delinquent').expect({ expired: true });
    });
    it('closed is final', () => {
      assert.equal(closed().snapshot.status, 'done');
    });
    it('survives persist/restore (continue-as-new) mid-settlement', () => {
      settling()
        .send({ type: 'TRANSACTION_PENDING', ref: 'settle:1' })
        .persistAndRestore()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' }, 'active')
        .expect({ debt: 0 });
    });
  });

  describe('invalid transitions are refused', () => {
    const table: Array<[string, () => Drive, InstrumentEvent]> = [
      ['purchase before authorization', fresh, { type: 'PURCHASE', ref: 'purchase:1', amount: 1 }],
      ['settle before authorization', fresh, { type: 'SETTLE', ref: 'settle:1', amount: 1 }],
      ['purchase above the credit limit', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 1001 }],
      ['purchase of zero', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 0 }],
      ['purchase of a fractional amount', active, { type: 'PURCHASE', ref: 'purchase:1', amount: 0.5 }],
      [
        'purchase that debt plus amount would push over the limit',
        indebted,
        { type: 'PURCHASE', ref: 'purchase:2', amount: 601 },
      ],
      ['settle with no debt', active, { type: 'SETTLE', ref: 'settle:1', amount: 1 }],
      ['settle above the debt', indebted, { type: 'SETTLE', ref: 'settle:1', amount: 401 }],
      ['a second settlement while one is open', settling, { type: 'SETTLE', ref: 'settle:2', amount: 100 }],
      ['write-off of less than the debt', indebted, { type: 'WRITE_OFF', ref: 'writeOff:1', amount: 100 }],
      ['write-off with no debt', active, { type: 'WRITE_OFF', ref: 'writeOff:1', amount: 0 }],
      ['write-off while settling', settling, { type: 'WRITE_OFF', ref: 'writeOff:1', amount: 400 }],
      ['close with debt', indebted, { type: 'CLOSE' }],
      ['close while settling', settling, { type: 'CLOSE' }],
      ['refund above refundable', indebted, { type: 'REFUND', ref: 'refund:1', amount: 500, refundable: 400 }],
      ['fund (not a postpaid operation)', active, { type: 'FUND', ref: 'fund:1', amount: 1 }],
      ['void (not a postpaid operation)', active, { type: 'VOID', ref: 'void:1' }],
      ['pending for a purchase is not a state change', indebted, { type: 'TRANSACTION_PENDING', ref: 'purchase:1' }],
      ['outcome for an unknown operation', settling, { type: 'TRANSACTION_SUCCEEDED', ref: 'settle:ghost' }],
      ['purchase when delinquent', delinquent, { type: 'PURCHASE', ref: 'purchase:9', amount: 1 }],
      ['close when delinquent with debt', delinquent, { type: 'CLOSE' }],
      ['purchase while writing off', writingOff, { type: 'PURCHASE', ref: 'purchase:9', amount: 1 }],
      ['settle while writing off', writingOff, { type: 'SETTLE', ref: 'settle:9', amount: 1 }],
      ['purchase when closed', closed, { type: 'PURCHASE', ref: 'purchase:1', amount: 1 }],
      ['settle when closed', closed, { type: 'SETTLE', ref: 'settle:1', amount: 1 }],
      ['write-off when closed', closed, { type: 'WRITE_OFF', ref: 'writeOff:1', amount: 1 }],
      ['close when closed', closed, { type: 'CLOSE' }],
    ];
    for (const [name, start, event] of table) {
      it(name, () => {
        start().refuse(event);
      });
    }

    it('purchases beyond the global amount limit, even after settlement freed the credit line', () => {
      const drive = active();
      for (const n of [1, 2, 3]) {
        drive
          .send({ type: 'PURCHASE', ref: `purchase:${n}`, amount: 500 })
          .send({ type: 'TRANSACTION_SUCCEEDED', ref: `purchase:${n}` })
          .send({ type: 'SETTLE', ref: `settle:${n}`, amount: 500 })
          .send({ type: 'TRANSACTION_SUCCEEDED', ref: `settle:${n}` }, 'active');
      }
      drive.expect({ totalCharged: 1500, debt: 0 }).refuse({ type: 'PURCHASE', ref: 'purchase:4', amount: 1 });
    });
    it('held purchases count against the credit limit', () => {
      active()
        .send({ type: 'PURCHASE', ref: 'purchase:1', amount: 900 })
        .refuse({ type: 'PURCHASE', ref: 'purchase:2', amount: 101 });
    });
    it('close while a purchase is open', () => {
      active().send({ type: 'PURCHASE', ref: 'purchase:1', amount: 1 }).refuse({ type: 'CLOSE' });
    });
    it('write-off while a purchase is open', () => {
      indebted()
        .send({ type: 'PURCHASE', ref: 'purchase:2', amount: 1 })
        .refuse({ type: 'WRITE_OFF', ref: 'writeOff:1', amount: 400 });
    });
    it('a late outcome never overwrites a terminal one', () => {
      settling()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' })
        .refuse({ type: 'TRANSACTION_FAILED', ref: 'settle:1' })
        .refuse({ type: 'TRANSACTION_SUCCEEDED', ref: 'settle:1' })
        .expect({ debt: 0, settled: 400 });
    });
  });
});
