// Single-use machine: every valid transition, and a table of events each state must refuse.
import assert from 'node:assert/strict';
import type { InstrumentEvent } from '../../machines';
import { Drive } from './helpers';

const fresh = (mode: 'pay' | 'reserve' = 'pay') => new Drive('single-use', { currency: 'USD', amount: 500, mode });
const authorized = (mode: 'pay' | 'reserve' = 'pay') => fresh(mode).send({ type: 'AUTHORIZED' }, 'authorized');
const paying = () => authorized().send({ type: 'PURCHASE', ref: 'purchase:p', amount: 500 }, 'paying');
const paid = () => paying().send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:p' }, 'paid');
const reserving = () => authorized('reserve').send({ type: 'PURCHASE', ref: 'purchase:r', amount: 500 }, 'reserving');
const reserved = () => reserving().send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:r' }, 'reserved');
const capturing = () => reserved().send({ type: 'CAPTURE', ref: 'capture:c', amount: 500 }, 'capturing');
const captured = () => capturing().send({ type: 'TRANSACTION_SUCCEEDED', ref: 'capture:c' }, 'captured');
const voided = () =>
  reserved()
    .send({ type: 'VOID', ref: 'void:v' }, 'voiding')
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'void:v' }, 'voided');
const partiallyRefunded = () =>
  paid()
    .send({ type: 'REFUND', ref: 'refund:1', amount: 200 })
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:1' }, 'partiallyRefunded');
const refunded = () =>
  paid()
    .send({ type: 'REFUND', ref: 'refund:all', amount: 500 })
    .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:all' }, 'refunded');
const declined = () =>
  paying().send({ type: 'TRANSACTION_FAILED', ref: 'purchase:p', reason: 'TransactionDenied' }, 'declined');
const closed = () => authorized().send({ type: 'CLOSE' }, 'closed');

describe('single-use machine', () => {
  describe('valid transitions', () => {
    it('awaitingAuthorization -> authorized on AUTHORIZED', () => {
      authorized().expect({ amount: 500, mode: 'pay' });
    });
    it('awaitingAuthorization -> closed on AUTHORIZATION_ABORTED / AUTHORIZATION_FAILED / CLOSE / EXPIRE', () => {
      fresh().send({ type: 'AUTHORIZATION_ABORTED' }, 'closed');
      fresh().send({ type: 'AUTHORIZATION_FAILED', reason: 'SE' }, 'closed');
      fresh().send({ type: 'CLOSE' }, 'closed');
      fresh().send({ type: 'EXPIRE' }, 'closed');
    });
    it('authorized -> paying -> paid (pay mode)', () => {
      paid().expect({ charged: 500, pending: [] });
    });
    it('a purchase below the authorized amount is accepted', () => {
      authorized()
        .send({ type: 'PURCHASE', ref: 'purchase:p', amount: 120 }, 'paying')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:p' }, 'paid')
        .expect({ charged: 120 });
    });
    it('paying -> paymentPending -> paid / declined', () => {
      paying()
        .send({ type: 'TRANSACTION_PENDING', ref: 'purchase:p' }, 'paymentPending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:p' }, 'paid');
      paying()
        .send({ type: 'TRANSACTION_PENDING', ref: 'purchase:p' }, 'paymentPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'purchase:p' }, 'declined');
    });
    it('paying -> declined', () => {
      declined().expect({ closeReason: 'purchase declined: TransactionDenied', charged: 0 });
    });
    it('authorized -> reserving -> reserved (reserve mode)', () => {
      reserved().expect({ reserved: 500, charged: 0 });
    });
    it('reserving -> reservationPending -> reserved / declined; reserving -> declined', () => {
      reserving()
        .send({ type: 'TRANSACTION_PENDING', ref: 'purchase:r' }, 'reservationPending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:r' }, 'reserved');
      reserving()
        .send({ type: 'TRANSACTION_PENDING', ref: 'purchase:r' }, 'reservationPending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'purchase:r' }, 'declined');
      reserving().send({ type: 'TRANSACTION_FAILED', ref: 'purchase:r' }, 'declined');
    });
    it('reserved -> capturing -> captured', () => {
      captured().expect({ charged: 500, reserved: 0 });
    });
    it('a partial capture charges only the captured amount', () => {
      reserved()
        .send({ type: 'CAPTURE', ref: 'capture:c', amount: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'capture:c' }, 'captured')
        .expect({ charged: 300 });
    });
    it('capturing -> capturePending -> captured / reserved; capturing -> reserved on failure', () => {
      capturing()
        .send({ type: 'TRANSACTION_PENDING', ref: 'capture:c' }, 'capturePending')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'capture:c' }, 'captured');
      capturing()
        .send({ type: 'TRANSACTION_PENDING', ref: 'capture:c' }, 'capturePending')
        .send({ type: 'TRANSACTION_FAILED', ref: 'capture:c' }, 'reserved');
      capturing()
        .send({ type: 'TRANSACTION_FAILED', ref: 'capture:c' }, 'reserved')
        .expect({ reserved: 500, pending: [] });
    });
    it('reserved -> voiding -> voided; a failed void returns to reserved', () => {
      voided().expect({ reserved: 0 });
      reserved()
        .send({ type: 'VOID', ref: 'void:v' }, 'voiding')
        .send({ type: 'TRANSACTION_FAILED', ref: 'void:v' }, 'reserved');
    });
    it('paid -> partiallyRefunded -> refunded', () => {
      partiallyRefunded()
        .expect({ refunded: 200 })
        .send({ type: 'REFUND', ref: 'refund:2', amount: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:2' }, 'refunded')
        .expect({ refunded: 500 });
    });
    it('paid -> refunded in one full refund; captured -> refunded too', () => {
      refunded();
      captured()
        .send({ type: 'REFUND', ref: 'refund:x', amount: 500 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:x' }, 'refunded');
    });
    it('captured -> partiallyRefunded', () => {
      captured()
        .send({ type: 'REFUND', ref: 'refund:x', amount: 1 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:x' }, 'partiallyRefunded');
    });
    it('a failed refund leaves the state and the refundable amount', () => {
      paid()
        .send({ type: 'REFUND', ref: 'refund:x', amount: 500 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'refund:x' }, 'paid')
        .expect({ refunded: 0, pending: [] });
      partiallyRefunded()
        .send({ type: 'REFUND', ref: 'refund:y', amount: 300 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'refund:y' }, 'partiallyRefunded');
      captured()
        .send({ type: 'REFUND', ref: 'refund:z', amount: 10 })
        .send({ type: 'TRANSACTION_FAILED', ref: 'refund:z' }, 'captured');
    });
    it('two refunds open at once: the one that completes the refund ends in refunded', () => {
      paid()
        .send({ type: 'REFUND', ref: 'refund:a', amount: 200 })
        .send({ type: 'REFUND', ref: 'refund:b', amount: 300 })
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:a' }, 'partiallyRefunded')
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'refund:b' }, 'refunded');
    });
    it('authorized, paid, captured and partiallyRefunded close on CLOSE; authorized on EXPIRE', () => {
      closed();
      authorized().send({ type: 'EXPIRE' }, 'closed');
      paid().send({ type: 'CLOSE' }, 'closed');
      captured().send({ type: 'CLOSE' }, 'closed');
      partiallyRefunded().send({ type: 'CLOSE' }, 'closed');
    });
    it('paid, captured and partiallyRefunded close on EXPIRE (refunds end with the instrument)', () => {
      paid().send({ type: 'EXPIRE' }, 'closed').expect({ closeReason: 'expired' });
      captured().send({ type: 'EXPIRE' }, 'closed');
      partiallyRefunded().send({ type: 'EXPIRE' }, 'closed');
    });
    it('refunded, voided, declined and closed are final', () => {
      for (const drive of [refunded(), voided(), declined(), closed()])
        assert.equal(drive.snapshot.status, 'done', drive.state);
    });
    it('survives persist/restore (continue-as-new) with a pending payment', () => {
      paying()
        .send({ type: 'TRANSACTION_PENDING', ref: 'purchase:p' })
        .persistAndRestore()
        .send({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:p' }, 'paid');
    });
  });

  describe('invalid transitions are refused', () => {
    const table: Array<[string, () => Drive, InstrumentEvent]> = [
      ['purchase before authorization', fresh, { type: 'PURCHASE', ref: 'purchase:p', amount: 1 }],
      ['capture before authorization', fresh, { type: 'CAPTURE', ref: 'capture:c', amount: 1 }],
      ['purchase above the authorized amount', authorized, { type: 'PURCHASE', ref: 'purchase:p', amount: 501 }],
      ['purchase of zero', authorized, { type: 'PURCHASE', ref: 'purchase:p', amount: 0 }],
      ['capture without a reservation', authorized, { type: 'CAPTURE', ref: 'capture:c', amount: 1 }],
      ['refund before payment', authorized, { type: 'REFUND', ref: 'refund:1', amount: 1 }],
      ['void without a reservation', authorized, { type: 'VOID', ref: 'void:v' }],
      ['a second purchase while paying', paying, { type: 'PURCHASE', ref: 'purchase:q', amount: 1 }],
      ['close while paying', paying, { type: 'CLOSE' }],
      ['a second purchase once paid', paid, { type: 'PURCHASE', ref: 'purchase:q', amount: 1 }],
      ['capture once paid', paid, { type: 'CAPTURE', ref: 'capture:c', amount: 1 }],
      ['void once paid', paid, { type: 'VOID', ref: 'void:v' }],
      ['refund above the charge', paid, { type: 'REFUND', ref: 'refund:1', amount: 501 }],
      ['refund above what is left', partiallyRefunded, { type: 'REFUND', ref: 'refund:2', amount: 301 }],
      ['capture above the reservation', reserved, { type: 'CAPTURE', ref: 'capture:c', amount: 501 }],
      ['refund of a reservation', reserved, { type: 'REFUND', ref: 'refund:1', amount: 1 }],
      ['close with an open reservation', reserved, { type: 'CLOSE' }],
      ['void while capturing', capturing, { type: 'VOID', ref: 'void:v' }],
      ['capture twice', captured, { type: 'CAPTURE', ref: 'capture:d', amount: 1 }],
      ['void after capture', captured, { type: 'VOID', ref: 'void:v' }],
      ['anything when refunded', refunded, { type: 'REFUND', ref: 'refund:9', amount: 1 }],
      ['capture when voided', voided, { type: 'CAPTURE', ref: 'capture:c', amount: 1 }],
      ['purchase when declined', declined, { type: 'PURCHASE', ref: 'purchase:q', amount: 1 }],
      ['purchase when closed', closed, { type: 'PURCHASE', ref: 'purchase:q', amount: 1 }],
      ['outcome for an unknown operation', paying, { type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:ghost' }],
      ['settle (not a single-use operation)', paid, { type: 'SETTLE', ref: 'settle:1', amount: 1 }],
    ];
    for (const [name, start, event] of table) {
      it(name, () => {
        start().refuse(event);
      });
    }
    it('a refund that open refunds would push past the charge', () => {
      paid()
        .send({ type: 'REFUND', ref: 'refund:a', amount: 400 })
        .refuse({ type: 'REFUND', ref: 'refund:b', amount: 101 });
    });
    it('close or expire while a refund is open', () => {
      paid().send({ type: 'REFUND', ref: 'refund:a', amount: 1 }).refuse({ type: 'CLOSE' }).refuse({ type: 'EXPIRE' });
    });
    it('expire with an open reservation (void it first)', () => {
      reserved().refuse({ type: 'EXPIRE' });
    });
    it('a late outcome never overwrites a terminal one', () => {
      const drive = declined();
      drive.refuse({ type: 'TRANSACTION_SUCCEEDED', ref: 'purchase:p' });
      paid().refuse({ type: 'TRANSACTION_FAILED', ref: 'purchase:p' });
    });
  });
});
