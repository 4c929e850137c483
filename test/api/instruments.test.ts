// The merchant API against the whole real stack, every part its own process: Temporal dev server,
// FPS sandbox, worker and api/main.ts. Instruments are authorized at the sandbox CBUI, then bought
// with; the sandbox ledger is the witness that money moved exactly once.
import assert from 'node:assert/strict';
import { DEV_SECRET_KEY } from '../../config';
import { activeInstrument, call, cbuiDecision, getStack, sandboxAdmin, until, type Answer, type Stack } from './stack';

function assertProblem(answer: Answer, status: number, code: string, field?: string) {
  assert.equal(answer.status, status, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(answer.body.code, code, answer.text);
  if (field !== undefined) assert.equal(answer.body.field, field, answer.text);
}

const money = (amount: string) => ({ amount, minorUnits: Math.round(Number(amount) * 100), currency: 'USD' });

describe('api: instruments and operations against the real stack (processes)', function () {
  this.timeout(90_000);
  let stack: Stack;

  before(async () => {
    stack = await getStack();
  });

  const ledger = async (callerReference: string) =>
    (await sandboxAdmin(stack, `/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`))
      .transactions as any[];
  const get = (instrumentId: string) => call(stack, 'GET', `/instruments/${instrumentId}`);
  const buy = (instrumentId: string, amount: string, key?: string, extra: Record<string, unknown> = {}) =>
    call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount, currency: 'USD', ...extra },
      headers: key ? { 'idempotency-key': key } : {},
    });

  describe('prepaid', () => {
    let instrumentId: string;
    let workflowId: string;

    it('is awaiting authorization until the buyer approves; purchases are 409 until then', async () => {
      const created = await call(stack, 'POST', '/customers/cust-prepaid/instruments', {
        body: { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' },
      });
      assert.equal(created.status, 201, created.text);
      ({ instrumentId, workflowId } = created.body);
      const before = await get(instrumentId);
      assert.equal(before.status, 200, before.text);
      assert.equal(before.body.state, 'awaitingAuthorization');
      assertProblem(await buy(instrumentId, '1.00'), 409, 'invalid_state');

      const returned = await fetch(await cbuiDecision(created.body.authorizationUrl, 'approve'), {
        redirect: 'manual',
      });
      assert.equal(returned.status, 303);
      assert.equal(returned.headers.get('location'), `/?instrument=${instrumentId}&authorization=authorized`);
      const active = await until('active and funded', async () => {
        const got = await get(instrumentId);
        return got.body.state === 'active' && got.body.pending.length === 0 && got;
      });
      assert.deepEqual(active.body.balance, money('20.00'));
      assert.equal(active.body.instrumentId, instrumentId);
      assert.equal(active.body.workflowId, workflowId);
      assert.equal(active.body.customerId, 'cust-prepaid');
      assert.equal(active.body.temporalUiUrl, `http://localhost:8233/namespaces/default/workflows/${workflowId}`);
      assert.equal(active.body.transactions[0].operation, 'fund');
      assert.deepEqual(active.body.transactions[0].amount, money('20.00'));
    });

    it('a purchase is approved (201) with the FPS transaction; the same key twice answers the same and charges once', async () => {
      const first = await buy(instrumentId, '4.99', 'order-1001', { description: 'E-book' });
      assert.equal(first.status, 201, first.text);
      assert.equal(first.body.outcome, 'approved');
      assert.equal(first.body.operation, 'purchase');
      assert.equal(first.body.id, 'order-1001');
      assert.equal(first.body.transactionStatus, 'Success');
      assert.equal(first.body.callerReference, `${instrumentId}:pay:order-1001`);
      assert.deepEqual(first.body.amount, money('4.99'));
      assert.ok(first.body.transactionId);

      const again = await buy(instrumentId, '4.99', 'order-1001', { description: 'E-book' });
      assert.equal(again.status, 201);
      assert.deepEqual(again.body, first.body);
      // purchaseId in the body and the same key: the same purchase.
      const viaBody = await buy(instrumentId, '4.99', 'order-1001', { purchaseId: 'order-1001' });
      assert.deepEqual(viaBody.body, first.body);

      const rows = await ledger(`${instrumentId}:pay:order-1001`);
      assert.equal(rows.length, 1);
      assert.equal(rows[0].status, 'Success');
      assert.equal(rows[0].amount.value, '4.99');
      assert.deepEqual((await get(instrumentId)).body.balance, money('15.01'));
    });

    it('the same key with another amount, or for another operation, is 409', async () => {
      assertProblem(await buy(instrumentId, '5.99', 'order-1001'), 409, 'idempotency_key_reused', 'Idempotency-Key');
      assertProblem(
        await call(stack, 'POST', `/instruments/${instrumentId}/fund`, {
          body: { amount: '4.99', currency: 'USD' },
          headers: { 'idempotency-key': 'order-1001' },
        }),
        409,
        'idempotency_key_reused',
      );
    });

    it('a purchase id in the body alone is the idempotency key', async () => {
      const first = await buy(instrumentId, '0.99', undefined, { purchaseId: 'song-7' });
      const second = await buy(instrumentId, '0.99', undefined, { purchaseId: 'song-7' });
      assert.equal(first.status, 201, first.text);
      assert.deepEqual(second.body, first.body);
      assert.equal((await ledger(`${instrumentId}:pay:song-7`)).length, 1);
    });

    it('declined by FPS (.51 cents: TransactionDenied) is 402 with the reason; the balance stays', async () => {
      const declined = await buy(instrumentId, '0.51', 'declined-1');
      assertProblem(declined, 402, 'payment_declined');
      assert.equal(declined.body.declineCode, 'TransactionDenied');
      assert.equal(declined.body.operation.outcome, 'declined');
      assert.equal(declined.body.operation.id, 'declined-1');
      // Replayed: the same decline.
      assert.deepEqual((await buy(instrumentId, '0.51', 'declined-1')).body, declined.body);
      assert.deepEqual((await get(instrumentId)).body.balance, money('14.02'));
    });

    it('pending at FPS (.13 cents) is 202 with the purchase to follow; the IPN settles it', async () => {
      const pending = await buy(instrumentId, '1.13', 'pending-1');
      assert.equal(pending.status, 202, pending.text);
      assert.equal(pending.body.outcome, 'pending');
      assert.equal(pending.headers.get('location'), `/instruments/${instrumentId}/purchases/pending-1`);
      assert.equal(pending.body.statusUrl, `/instruments/${instrumentId}/purchases/pending-1`);
      const settled = await until('pending purchase settled', async () => {
        const got = await get(instrumentId);
        return got.body.pending.length === 0 && got;
      });
      const record = settled.body.transactions.find((t: any) => t.id === 'pending-1');
      assert.equal(record.status, 'Success');
      assert.deepEqual(settled.body.balance, money('12.89'));
      // The sandbox told the API by IPN, and the API signalled the workflow.
      await until('IPN signalled', async () =>
        stack.apiLog().includes(`"instrumentId":"${instrumentId}","callerReference":"${instrumentId}:pay:pending-1"`),
      );
    });

    it('422 for more than the balance and for another currency; nothing reaches FPS', async () => {
      assertProblem(await buy(instrumentId, '100.00', 'too-much'), 422, 'limit_exceeded', 'amount');
      assertProblem(
        await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
          body: { amount: '1.00', currency: 'EUR' },
          headers: { 'idempotency-key': 'euro' },
        }),
        422,
        'invalid_currency',
        'currency',
      );
      assert.equal((await ledger(`${instrumentId}:pay:too-much`)).length, 0);
    });

    it('refunds a purchase (201), refuses an unknown one (422); funds (201); settle is 409 on prepaid', async () => {
      const refund = await call(stack, 'POST', `/instruments/${instrumentId}/refunds`, {
        body: { purchaseId: 'order-1001' },
        headers: { 'idempotency-key': 'refund-1' },
      });
      assert.equal(refund.status, 201, refund.text);
      assert.equal(refund.body.operation, 'refund');
      assert.deepEqual(refund.body.amount, money('4.99'));
      assertProblem(
        await call(stack, 'POST', `/instruments/${instrumentId}/refunds`, { body: { purchaseId: 'no-such-order' } }),
        422,
        'unknown_purchase',
        'purchaseId',
      );
      assertProblem(
        await call(stack, 'POST', `/instruments/${instrumentId}/refunds`, {
          body: { purchaseId: 'song-7', amount: '0.99', currency: 'EUR' },
        }),
        422,
        'invalid_currency',
        'currency',
      );

      // The sandbox caps a prepaid balance at the set-up funding amount ($20.00).
      const fund = await call(stack, 'POST', `/instruments/${instrumentId}/fund`, {
        body: { amount: '2.00', currency: 'USD' },
        headers: { 'idempotency-key': 'topup-1' },
      });
      assert.equal(fund.status, 201, fund.text);
      const after = await until('refund and funding applied', async () => {
        const got = await get(instrumentId);
        return got.body.pending.length === 0 && got;
      });
      assert.deepEqual(after.body.balance, money('19.88'));
      assertProblem(
        await call(stack, 'POST', `/instruments/${instrumentId}/settle`, { body: {} }),
        409,
        'invalid_state',
      );
    });

    it('closes (200); afterwards operations are refused with 409 and reads still work', async () => {
      const closed = await call(stack, 'POST', `/instruments/${instrumentId}/close`, {
        body: { reason: 'customer left' },
      });
      assert.equal(closed.status, 200, closed.text);
      assert.equal(closed.body.state, 'closed');
      const refused = await buy(instrumentId, '1.00', 'after-close');
      assert.equal(refused.status, 409, refused.text);
      assert.ok(['instrument_closed', 'invalid_state'].includes(refused.body.code));
      const listed = await until('visibility shows the closed instrument', async () => {
        const answer = await call(stack, 'GET', '/customers/cust-prepaid/instruments');
        const found = answer.body.instruments.find((i: any) => i.instrumentId === instrumentId);
        return found?.state === 'closed' && found;
      });
      assert.equal(listed.type, 'prepaid');
    });
  });

  describe('prepaid: not enough money', () => {
    it('an empty wallet answers the same 422 as a purchase over a non-zero balance; nothing changes', async () => {
      const customerId = `cust-empty-${Date.now()}`;
      const { instrumentId } = await activeInstrument(stack, customerId, {
        type: 'prepaid',
        fundingAmount: '5.00',
        currency: 'USD',
      });
      assert.equal((await buy(instrumentId, '4.00', 'first')).status, 201);
      const over = await buy(instrumentId, '2.00', 'over');
      assertProblem(over, 422, 'limit_exceeded', 'amount');
      assert.equal((await buy(instrumentId, '1.00', 'rest')).status, 201);
      const before = await get(instrumentId);
      assert.equal(before.body.state, 'depleted');
      assert.deepEqual(before.body.balance, money('0.00'));
      const empty = await buy(instrumentId, '2.00', 'empty');
      assertProblem(empty, 422, 'limit_exceeded', 'amount');
      assert.equal(empty.body.type, over.body.type, empty.text);
      const after = await get(instrumentId);
      assert.equal(after.body.state, 'depleted');
      assert.deepEqual(after.body.balance, money('0.00'));
      assert.deepEqual(after.body.transactions, before.body.transactions);
      assert.deepEqual(after.body.pending, []);
      assert.equal((await ledger(`${instrumentId}:pay:empty`)).length, 0);
    });
  });

  describe('postpaid', () => {
    it('purchases accrue debt up to the credit limit; settle clears it; write-off closes the account', async () => {
      const { instrumentId } = await activeInstrument(stack, 'cust-postpaid', {
        type: 'postpaid',
        creditLimit: '50.00',
        globalAmountLimit: '500.00',
        currency: 'USD',
      });
      assert.equal((await buy(instrumentId, '2.49', 'skin-1')).status, 201);
      assert.equal((await buy(instrumentId, '4.99', 'book-1')).status, 201);
      const owing = await get(instrumentId);
      assert.deepEqual(owing.body.debt, money('7.48'));
      assert.deepEqual(owing.body.creditLimit, money('50.00'));
      assertProblem(await buy(instrumentId, '45.00', 'too-much'), 422, 'limit_exceeded', 'amount');

      const settle = await call(stack, 'POST', `/instruments/${instrumentId}/settle`, {
        body: {},
        headers: { 'idempotency-key': 'settle-1' },
      });
      assert.ok([200, 202].includes(settle.status), settle.text);
      assert.equal(settle.body.operation, 'settle');
      const settled = await until('debt settled', async () => {
        const got = await get(instrumentId);
        return got.body.pending.length === 0 && got.body.state === 'active' && got;
      });
      assert.deepEqual(settled.body.debt, money('0.00'));

      assert.equal((await buy(instrumentId, '3.00', 'book-2')).status, 201);
      const writeOff = await call(stack, 'POST', `/instruments/${instrumentId}/write-off`, { body: {} });
      assert.ok([200, 202].includes(writeOff.status), writeOff.text);
      const closed = await until('written off and closed', async () => {
        const got = await get(instrumentId);
        return got.body.state === 'closed' && got;
      });
      assert.deepEqual(closed.body.debt, money('0.00'));
      const credit = await sandboxAdmin(
        stack,
        `/admin/credit/${(await ledger(`${instrumentId}:pay:book-2`))[0].instrumentId}`,
      );
      assert.equal(credit.settledTotal.value, '7.48');
      assert.equal(credit.writtenOffTotal.value, '3.00');
      assert.equal(credit.debt.value, '0.00');
    });
  });

  describe('single use', () => {
    it('reserve then capture', async () => {
      const { instrumentId } = await activeInstrument(stack, 'cust-single', {
        type: 'single-use',
        amount: '9.99',
        currency: 'USD',
        singleUseMode: 'reserve',
      });
      const reserved = await buy(instrumentId, '9.99', 'gift-1');
      assert.equal(reserved.status, 201, reserved.text);
      assert.equal(reserved.body.transactionStatus, 'Reserved');
      const captured = await call(stack, 'POST', `/instruments/${instrumentId}/capture`, {
        body: {},
        headers: { 'idempotency-key': 'capture-1' },
      });
      assert.equal(captured.status, 200, captured.text);
      assert.equal(captured.body.operation, 'capture');
      assertProblem(await call(stack, 'POST', `/instruments/${instrumentId}/void`, { body: {} }), 409, 'invalid_state');
    });

    it('reserve then void', async () => {
      const { instrumentId } = await activeInstrument(stack, 'cust-single', {
        type: 'single-use',
        amount: '3.00',
        currency: 'USD',
        singleUseMode: 'reserve',
      });
      assert.equal((await buy(instrumentId, '3.00', 'gift-2')).status, 201);
      const voided = await call(stack, 'POST', `/instruments/${instrumentId}/void`, { body: {} });
      assert.equal(voided.status, 200, voided.text);
      assert.equal(voided.body.operation, 'void');
    });

    it('pay once; a second purchase is refused', async () => {
      const { instrumentId } = await activeInstrument(stack, 'cust-single', {
        type: 'single-use',
        amount: '1.50',
        currency: 'USD',
      });
      const paid = await buy(instrumentId, '1.50', 'once');
      assert.equal(paid.status, 201, paid.text);
      assert.equal(paid.body.transactionStatus, 'Success');
      const second = await buy(instrumentId, '1.50', 'twice');
      assert.ok([409, 422].includes(second.status), second.text);
    });
  });

  it('an aborted authorization closes the instrument', async () => {
    const created = await call(stack, 'POST', '/customers/cust-abort/instruments', {
      body: { type: 'prepaid', fundingAmount: '10.00', currency: 'USD' },
    });
    const returned = await fetch(await cbuiDecision(created.body.authorizationUrl, 'abort'), { redirect: 'manual' });
    assert.equal(returned.headers.get('location'), `/?instrument=${created.body.instrumentId}&authorization=aborted`);
    await until('closed after abort', async () => (await get(created.body.instrumentId)).body.state === 'closed');
  });

  it('many concurrent purchases on one instrument all succeed once (Update back-pressure is retried)', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-burst', {
      type: 'prepaid',
      fundingAmount: '100.00',
      currency: 'USD',
    });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => buy(instrumentId, '0.10', `burst-${i}`)));
    assert.deepEqual(
      answers.map((a) => a.status),
      answers.map(() => 201),
      answers
        .filter((a) => a.status !== 201)
        .map((a) => a.text)
        .join('\n'),
    );
    assert.deepEqual((await get(instrumentId)).body.balance, money('97.00'));
    for (const i of [0, 14, 29]) assert.equal((await ledger(`${instrumentId}:pay:burst-${i}`)).length, 1);
  });

  // Last: it reads what every test above made the API log.
  describe('logging', () => {
    it('the API process logs one JSON line per request with ids, and never a key or secret', async () => {
      const log = stack.apiLog();
      assert.ok(!log.includes(stack.apiKey), 'API key in the log');
      assert.ok(!log.includes(DEV_SECRET_KEY), 'FPS secret in the log');
      const lines = log
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      const purchase = lines.find((l) => l.msg === 'request' && l.method === 'POST' && l.purchaseId === 'order-1001');
      assert.ok(purchase, 'no request line for purchase order-1001');
      assert.equal(purchase.status, 201);
      assert.match(purchase.path, /^\/instruments\/ins_[a-z2-7]{20}\/purchases$/);
      assert.match(purchase.instrumentId, /^ins_/);
      assert.equal(typeof purchase.ms, 'number');
      const ret = lines.find((l) => l.msg === 'request' && l.path === '/fps/return');
      assert.ok(ret, 'no request line for /fps/return');
      assert.ok(!JSON.stringify(ret).includes('signature'), 'the return query (with its signature) was logged');
    });

    it('stops cleanly on SIGTERM (requests in flight finish, exit code 0) and comes back', async () => {
      const { instrumentId } = await activeInstrument(stack, 'cust-shutdown', {
        type: 'prepaid',
        fundingAmount: '5.00',
        currency: 'USD',
      });
      const inFlight = buy(instrumentId, '1.00', 'during-shutdown');
      await new Promise((resolve) => setTimeout(resolve, 5));
      const exit = await stack.api.stop('SIGTERM');
      assert.equal(exit.code, 0, stack.api.tail());
      assert.match(stack.apiLog(), /"msg":"api stopped"/);
      const answer = await inFlight.catch((err: Error) => err);
      // Either it was served before the listener closed, or it never got in: never a cut-off answer.
      if (!(answer instanceof Error)) assert.equal(answer.status, 201, answer.text);
      await stack.api.restart();
      assert.equal((await call(stack, 'GET', '/readyz', { key: null })).status, 200);
    });
  });
});
