// Lifecycle events, balance rules and auto top-up through the merchant API on the shared stack
// (sandbox, worker and API as processes): each instrument here has its own customer id, and every
// assertion reads only that instrument's events (GET /events?instrumentId=…) and its FPS ledger.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { activeInstrument, call, getStack, sandboxAdmin, until, type Answer, type Stack } from './stack';

interface LoggedEvent {
  id: string;
  type: string;
  sequence: number;
  instrumentId: string;
  customerId: string;
  createdAt: string;
  data: Record<string, any>;
}

describe('api: lifecycle events and balance rules', function () {
  this.timeout(120_000);
  let stack: Stack;
  const run = randomUUID().slice(0, 8);
  let customers = 0;
  const customer = () => `bal-${run}-${++customers}`;

  before(async () => {
    stack = await getStack();
  });

  async function eventsOf(instrumentId: string): Promise<LoggedEvent[]> {
    const events: LoggedEvent[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await call(
        stack,
        'GET',
        `/events?instrumentId=${instrumentId}&limit=100${after ? `&after=${after}` : ''}`,
      );
      assert.equal(page.status, 200, page.text);
      events.push(...page.body.data);
      after = page.body.nextCursor;
      if (!page.body.hasMore) return events;
    }
  }
  /** The instrument's events once `done` holds for them. */
  const eventsWhen = (instrumentId: string, what: string, done: (events: LoggedEvent[]) => boolean) =>
    until(
      `${what} for ${instrumentId}`,
      async () => {
        const events = await eventsOf(instrumentId);
        return done(events) && events;
      },
      20_000,
    );
  const count = (events: LoggedEvent[], type: string) => events.filter((e) => e.type === type).length;
  const purchase = (instrumentId: string, amount: string, key = `p-${randomUUID()}`) =>
    call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount, currency: 'USD' },
      headers: { 'idempotency-key': key },
    });
  const instrument = (instrumentId: string) => call(stack, 'GET', `/instruments/${instrumentId}`);
  const patch = (instrumentId: string, body: unknown) => call(stack, 'PATCH', `/instruments/${instrumentId}`, { body });
  function expectProblem(answer: Answer, status: number, code: string, field?: string): void {
    assert.equal(answer.status, status, answer.text);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(answer.body.code, code, answer.text);
    if (field !== undefined) assert.equal(answer.body.field, field, answer.text);
  }
  /** The instrument's FPS prepaid balance (minor units), from the sandbox's ledger. */
  async function fpsPrepaidBalance(instrumentId: string): Promise<number> {
    const { body } = await call(stack, 'GET', `/instruments/${instrumentId}`);
    const funding = body.transactions.find((t: { id: string }) => t.id === 'wf:initial');
    const tx = await sandboxAdmin(stack, `/admin/transactions/${funding.transactionId}`);
    const prepaid = await sandboxAdmin(stack, `/admin/prepaid/${tx.instrumentId}`);
    return prepaid.balance.amount as number;
  }

  it('a prepaid instrument: instrument.authorized, .activated and .closed once each, in order, around its money events', async () => {
    const customerId = customer();
    const { instrumentId } = await activeInstrument(stack, customerId, {
      type: 'prepaid',
      fundingAmount: '30.00',
      currency: 'USD',
    });
    assert.equal((await purchase(instrumentId, '5.00')).status, 201);
    const closed = await call(stack, 'POST', `/instruments/${instrumentId}/close`, { body: { reason: 'test over' } });
    assert.equal(closed.status, 200, closed.text);
    const events = await eventsWhen(instrumentId, 'instrument.closed', (e) => count(e, 'instrument.closed') === 1);
    assert.deepEqual(
      events.map((e) => e.type),
      ['instrument.authorized', 'funding.succeeded', 'instrument.activated', 'purchase.approved', 'instrument.closed'],
    );
    assert.deepEqual(
      events.map((e) => e.sequence),
      [1, 2, 3, 4, 5],
    );
    for (const e of events) {
      assert.equal(e.instrumentId, instrumentId);
      assert.equal(e.customerId, customerId);
    }
    const [authorized, , activated, , last] = events;
    assert.equal(authorized.data.instrumentId, instrumentId);
    assert.equal(activated.data.state, 'active');
    assert.deepEqual(activated.data.balance, { amount: '30.00', currency: 'USD' });
    assert.equal(last.data.state, 'closed');
    assert.equal(last.data.closeReason, 'test over');
    assert.deepEqual(last.data.balance, { amount: '25.00', currency: 'USD' });
    // GET /events/{id} serves the same event.
    const one = await call(stack, 'GET', `/events/${last.id}`);
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.type, 'instrument.closed');
    // Closed: its rules cannot change any more.
    expectProblem(await patch(instrumentId, { lowBalanceThreshold: '1.00' }), 409, 'invalid_state');
  });

  it('lowBalanceThreshold at creation: one balance.low per crossing, none while it stays below', async () => {
    const { instrumentId } = await activeInstrument(stack, customer(), {
      type: 'prepaid',
      fundingAmount: '50.00',
      currency: 'USD',
      lowBalanceThreshold: '20.00',
    });
    const got = await instrument(instrumentId);
    assert.deepEqual(got.body.balanceRules, {
      lowBalanceThreshold: { amount: '20.00', minorUnits: 2000, currency: 'USD' },
      lowBalanceCrossings: 0,
      autoTopUpCrossings: 0,
    });
    for (const amount of ['25.00', '6.00', '1.00']) assert.equal((await purchase(instrumentId, amount)).status, 201); // 25, 19 (crossing 1), 18
    const fund = await call(stack, 'POST', `/instruments/${instrumentId}/fund`, {
      body: { amount: '10.00', currency: 'USD' },
      headers: { 'idempotency-key': `f-${randomUUID()}` },
    });
    assert.equal(fund.status, 201, fund.text); // 28: above again
    for (const amount of ['8.00', '2.00']) assert.equal((await purchase(instrumentId, amount)).status, 201); // 20 (not below), 18 (crossing 2)
    const events = await eventsWhen(instrumentId, 'two balance.low', (e) => count(e, 'balance.low') >= 2);
    const low = events.filter((e) => e.type === 'balance.low');
    assert.equal(low.length, 2);
    assert.deepEqual(
      low.map((e) => [e.data.crossing, e.data.balance.amount]),
      [
        [1, '19.00'],
        [2, '18.00'],
      ],
    );
    assert.equal((await instrument(instrumentId)).body.balanceRules.lowBalanceCrossings, 2);
  });

  it('auto top-up under concurrent purchases: once per crossing, cut to the funding limit, with funding.succeeded', async () => {
    const { instrumentId } = await activeInstrument(stack, customer(), {
      type: 'prepaid',
      fundingAmount: '50.00',
      currency: 'USD',
    });
    // Added by PATCH: below 20.00 fund 45.00 — more than the 50.00 limit leaves room for.
    const patched = await patch(instrumentId, { autoTopUp: { below: '20.00', amount: '45.00' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.balanceRules.autoTopUp.amount.amount, '45.00');
    for (let round = 1; round <= 2; round++) {
      // Five at once: 50.00 → 15.00; the fifth crosses below 20.00.
      const answers = await Promise.all(Array.from({ length: 5 }, () => purchase(instrumentId, '7.00')));
      for (const answer of answers) assert.equal(answer.status, 201, answer.text);
      const events = await eventsWhen(
        instrumentId,
        `top-up ${round}`,
        (e) =>
          e.filter((x) => x.type === 'funding.succeeded' && String(x.data.id).startsWith('wf:auto-')).length >= round,
      );
      const topUps = events.filter((e) => e.type.startsWith('funding.') && String(e.data.id).startsWith('wf:auto-'));
      assert.deepEqual(
        topUps.map((e) => [e.type, e.data.id, e.data.amount.amount]),
        Array.from({ length: round }, (_, i) => ['funding.succeeded', `wf:auto-${i + 1}`, '35.00']),
        'one top-up per crossing, min(45.00, 50.00 - 15.00)',
      );
      assert.match(topUps[round - 1].data.callerReference, new RegExp(`^${instrumentId}:fund:wf:auto-${round}$`));
      const after = await until(`balance back for ${instrumentId}`, async () => {
        const got = await instrument(instrumentId);
        return got.body.pending.length === 0 && got.body;
      });
      assert.equal(after.balance.amount, '50.00');
      assert.equal(after.balanceRules.autoTopUpCrossings, round);
      assert.ok((await fpsPrepaidBalance(instrumentId)) <= 5000, 'FPS never holds more than the funding limit');
    }
    // No limit room at all: a crossing is skipped, nothing is funded, nothing is refused by FPS.
    const full = await patch(instrumentId, { autoTopUp: { below: '49.00', amount: '5.00' } });
    assert.equal(full.status, 200, full.text);
    assert.equal((await purchase(instrumentId, '1.00')).status, 201); // 49.00: not below
    assert.equal((await purchase(instrumentId, '0.50')).status, 201); // 48.50: crossing 3 → min(5.00, 1.50)
    const events = await eventsWhen(instrumentId, 'top-up 3', (e) => e.some((x) => x.data.id === 'wf:auto-3'));
    assert.equal(events.find((x) => x.data.id === 'wf:auto-3')!.data.amount.amount, '1.50');
    assert.equal(count(events, 'funding.failed'), 0);
  });

  it('PATCH /instruments/{id}: bad input is a problem and changes nothing; null removes a rule', async () => {
    const { instrumentId } = await activeInstrument(stack, customer(), {
      type: 'prepaid',
      fundingAmount: '20.00',
      currency: 'USD',
      lowBalanceThreshold: '5.00',
    });
    const before = (await instrument(instrumentId)).body.balanceRules;
    expectProblem(await patch(instrumentId, {}), 422, 'validation_failed');
    expectProblem(
      await patch(instrumentId, { lowBalanceThreshold: 5 }),
      422,
      'validation_failed',
      'lowBalanceThreshold',
    );
    expectProblem(
      await patch(instrumentId, { lowBalanceThreshold: '-1.00' }),
      422,
      'invalid_amount',
      'lowBalanceThreshold',
    );
    expectProblem(
      await patch(instrumentId, { lowBalanceThreshold: '0.00' }),
      422,
      'invalid_amount',
      'lowBalanceThreshold',
    );
    expectProblem(
      await patch(instrumentId, { lowBalanceThreshold: '1.234' }),
      422,
      'invalid_amount',
      'lowBalanceThreshold',
    );
    expectProblem(
      await patch(instrumentId, { autoTopUp: { below: '5.00' } }),
      422,
      'validation_failed',
      'autoTopUp.amount',
    );
    expectProblem(
      await patch(instrumentId, { autoTopUp: { below: '5.00', amount: 'lots' } }),
      422,
      'invalid_amount',
      'autoTopUp.amount',
    );
    expectProblem(await patch(instrumentId, { colour: 'red' }), 422, 'validation_failed', 'colour');
    const raw = await call(stack, 'PATCH', `/instruments/${instrumentId}`, {
      raw: '{"lowBalanceThreshold":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(raw.status, 400, raw.text);
    assert.match(raw.headers.get('content-type') ?? '', /^application\/problem\+json/);
    expectProblem(await patch('ins_doesnotexist0000000', { lowBalanceThreshold: '1.00' }), 404, 'instrument_not_found');
    assert.deepEqual((await instrument(instrumentId)).body.balanceRules, before, 'nothing changed');

    const removed = await patch(instrumentId, {
      lowBalanceThreshold: null,
      autoTopUp: { below: '2.00', amount: '3.00' },
    });
    assert.equal(removed.status, 200, removed.text);
    assert.equal(removed.body.balanceRules.lowBalanceThreshold, undefined);
    assert.equal(removed.body.balanceRules.autoTopUp.below.amount, '2.00');

    // Not prepaid: refused before it reaches the workflow.
    const postpaid = await call(stack, 'POST', `/customers/${customer()}/instruments`, {
      body: { type: 'postpaid', creditLimit: '10.00', globalAmountLimit: '10.00', currency: 'USD' },
    });
    assert.equal(postpaid.status, 201, postpaid.text);
    expectProblem(
      await patch(postpaid.body.instrumentId, { lowBalanceThreshold: '1.00' }),
      422,
      'validation_failed',
      'lowBalanceThreshold',
    );
    // The OpenAPI document describes the route from the same declaration.
    const doc = (await call(stack, 'GET', '/openapi.json', { key: null })).body;
    const op = doc.paths['/instruments/{instrumentId}'].patch;
    assert.equal(op.operationId, 'updateInstrument');
    assert.match(JSON.stringify(op.requestBody), /UpdateInstrumentRequest/);
    // And rules at creation belong to prepaid only.
    const wrong = await call(stack, 'POST', `/customers/${customer()}/instruments`, {
      body: {
        type: 'postpaid',
        creditLimit: '10.00',
        globalAmountLimit: '10.00',
        currency: 'USD',
        lowBalanceThreshold: '1.00',
      },
    });
    expectProblem(wrong, 422, 'validation_failed', 'lowBalanceThreshold');
  });
});
