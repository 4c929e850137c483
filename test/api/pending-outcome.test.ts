// A purchase answered 202 (Pending at FPS) must be followable to its outcome by the buyer's client
// with nothing but its purchase id, however busy the instrument. Today the only way is the
// instrument's `transactions` list (the 20 most recent), and repeating the request with the same
// Idempotency-Key answers 202 forever within one workflow run (Temporal returns a known Update id's
// first result) but the final outcome after a continue-as-new. See docs/guarantees.md.
import assert from 'node:assert/strict';
import { activeInstrument, call, getStack, until, type Stack } from './stack';

describe('api: the outcome of a purchase that was Pending', function () {
  this.timeout(60_000);
  let stack: Stack;
  let instrumentId: string;

  before(async () => {
    stack = await getStack();
    ({ instrumentId } = await activeInstrument(stack, 'pending-outcome', {
      type: 'prepaid',
      fundingAmount: '50.00',
      currency: 'USD',
    }));
  });

  it('the same Idempotency-Key, sent again after FPS decided, answers the final outcome (201), not 202', async () => {
    const buy = () =>
      call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '1.13', currency: 'USD' },
        headers: { 'idempotency-key': 'pending-then-success' },
      });
    const first = await buy();
    assert.equal(first.status, 202, first.text);
    await until('FPS decided (the instrument shows Success)', async () => {
      const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
      return got.body.transactions.some(
        (t: { id: string; status: string }) => t.id === 'pending-then-success' && t.status === 'Success',
      );
    });
    const again = await buy();
    assert.equal(
      again.status,
      201,
      `a retry with the same key still answers ${again.status} ${again.body?.outcome ?? ''}: the client cannot learn the outcome from its own request`,
    );
    assert.equal(again.body.outcome, 'approved');
    assert.equal(again.body.transactionId, first.body.transactionId);
  });

  it('a purchase that rolled out of the recent transactions can still be looked up by its id', async () => {
    // 25 more purchases push the first one out of the snapshot's 20 recent transactions.
    const target = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount: '0.10', currency: 'USD' },
      headers: { 'idempotency-key': 'early-purchase' },
    });
    assert.equal(target.status, 201, target.text);
    for (let i = 0; i < 25; i++) {
      const r = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '0.01', currency: 'USD' },
        headers: { 'idempotency-key': `filler-${i}` },
      });
      assert.equal(r.status, 201, r.text);
    }
    const snapshot = await call(stack, 'GET', `/instruments/${instrumentId}`);
    assert.ok(
      !snapshot.body.transactions.some((t: { id: string }) => t.id === 'early-purchase'),
      'rolled out of the recent list',
    );
    const lookup = await call(stack, 'GET', `/instruments/${instrumentId}/purchases/early-purchase`);
    assert.equal(
      lookup.status,
      200,
      `GET /instruments/{id}/purchases/{purchaseId} → ${lookup.status} ${lookup.body?.code ?? ''}`,
    );
    assert.equal(lookup.body.outcome, 'approved');
  });
});
