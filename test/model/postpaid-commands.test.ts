// Random command sequences (fast-check fc.commands + fc.asyncModelRun) against a postpaid instrument
// on the real stack (sandbox, worker, API processes), checked after every command against a small
// reference model written here (not derived from machines/): purchases accrue debt up to the credit
// limit (over it: 422), the workflow settles the whole debt by itself once a purchase takes it to
// 80 % of the limit, settlements on demand (all or part), refunds (full, partial, too much), the
// same purchase again (also concurrently) and the same key with another amount, purchases FPS
// declines (.51) or answers Pending (.13 then Success, .14 then Failure) with duplicated IPNs (or
// late ones, after the workflow's status poll decided), and
// purchases that meet a sandbox fault (answer dropped after the money moved, 500, throttling).
// Settlements obey the sandbox's magic cents too: a failed one schedules a retry (no settlement by
// threshold until then), and more than 3 in a row make the account delinquent (no purchases).
// A write-off ends the account. At the end the FPS ledger agrees (scripts/lib/reconcile.ts).
// MODEL_SEED / MODEL_RUNS / MODEL_COMMANDS as in prepaid-commands.test.ts.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatDecimal } from '../../fps/money';
import { formatReport, reconcileUntilSettled, SandboxLedger } from '../../scripts/lib/reconcile';
import { activeInstrument, call, getStack, until, type Answer, type Stack } from '../api/stack';
import { runModel, SEED, TARGET } from './run';

const RUNS = Number(process.env.MODEL_RUNS ?? 3);
const COMMANDS = Number(process.env.MODEL_COMMANDS ?? 25);
const LIMIT = 2000;
/** The workflow's settlementThresholdPercent (workflows/settings.ts): auto-settles at 80 % of the limit. */
const THRESHOLD = (LIMIT * 80) / 100;

interface Model {
  debt: number;
  purchases: Array<{ key: string; amount: number; refunded: number; transactionId: string }>;
  state: 'active' | 'delinquent' | 'closed';
  /** Failed settlements in a row (the workflow's settlementRetryLimit is 3). */
  failures: number;
  /** A failed settlement scheduled a retry (a day later): no settlement by threshold until then. */
  retryScheduled: boolean;
}

/** FPS's answer to a money action by the amount's cents (sandbox/magic.ts): SettleDebt obeys it too. */
const fpsSucceeds = (amount: number) => ![14, 51, 52].includes(amount % 100);
const RETRY_LIMIT = 3;

interface Real {
  stack: Stack;
  instrumentId: string;
  commands: number;
}

const usd = (minor: number) => formatDecimal(minor, 'USD');
let keyCounter = 0;
const freshKey = (what: string) => `pm${SEED.toString(36)}-${what}-${++keyCounter}`;

function post(real: Real, route: string, key: string, body: unknown): Promise<Answer> {
  real.commands++;
  return call(real.stack, 'POST', `/instruments/${real.instrumentId}/${route}`, {
    body,
    headers: { 'idempotency-key': key },
  });
}

/** A settlement's outcome: success clears `amount`; a failure counts towards delinquency. */
function settled(model: Model, amount: number): void {
  if (fpsSucceeds(amount)) {
    model.debt -= amount;
    model.failures = 0;
    model.retryScheduled = false;
    return;
  }
  model.failures++;
  if (model.failures > RETRY_LIMIT) model.state = 'delinquent';
  else model.retryScheduled = true;
}

/** A purchase FPS charged: debt grows; at the threshold the workflow settles all of it by itself. */
function charge(model: Model, amount: number): void {
  model.debt += amount;
  if (model.state === 'active' && !model.retryScheduled && model.debt >= THRESHOLD) settled(model, model.debt);
}

/** Waits for the workflow to finish what it does by itself (settlements, IPNs), then compares. */
async function assertMatches(model: Model, real: Real, after: string): Promise<void> {
  let last: Answer | undefined;
  const want = model.state;
  await until(
    `snapshot after ${after}`,
    async () => {
      last = await call(real.stack, 'GET', `/instruments/${real.instrumentId}`);
      return (
        last.status === 200 &&
        last.body.pending.length === 0 &&
        last.body.state === want &&
        last.body.debt.minorUnits === model.debt
      );
    },
    15_000,
    50,
  ).catch(() => {
    assert.fail(
      `after ${after}: model debt ${usd(model.debt)} ${want}; API ${last?.status} ${last?.body?.state} debt ` +
        `${last?.body?.debt?.value} pending ${JSON.stringify(last?.body?.pending)}`,
    );
  });
}

/** Ordinary cents only: the magic ones (.13 .14 .51 .52) are other commands' business. */
const plainAmount = fc.integer({ min: 1, max: 900 }).filter((n) => ![13, 14, 51, 52].includes(n % 100));
const open = (model: Readonly<Model>) => model.state !== 'closed';
const buying = (model: Readonly<Model>) => model.state === 'active';

class Purchase implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = open;
  async run(model: Model, real: Real) {
    const key = freshKey('buy');
    const answer = await post(real, 'purchases', key, { amount: usd(this.amount), currency: 'USD' });
    if (model.state === 'delinquent') {
      assert.equal(answer.status, 409, answer.text);
      assert.equal(answer.body.code, 'invalid_state');
    } else if (model.debt + this.amount <= LIMIT) {
      assert.equal(answer.status, 201, answer.text);
      assert.equal(answer.body.outcome, 'approved');
      model.purchases.push({ key, amount: this.amount, refunded: 0, transactionId: answer.body.transactionId });
      charge(model, this.amount);
    } else {
      assert.equal(answer.status, 422, answer.text);
      assert.equal(answer.body.code, 'limit_exceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `purchase(${usd(this.amount)})`;
}

/** FPS declines (.51: TransactionDenied, .52: a Failure transaction): 402, no debt. */
class DeclinedPurchase implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly dollars: number,
    readonly cents: 51 | 52,
  ) {}
  check = (model: Readonly<Model>) => buying(model) && model.debt + this.amount() <= LIMIT;
  amount = () => this.dollars * 100 + this.cents;
  async run(model: Model, real: Real) {
    const answer = await post(real, 'purchases', freshKey('declined'), { amount: usd(this.amount()), currency: 'USD' });
    assert.equal(answer.status, 402, answer.text);
    assert.equal(answer.body.code, 'payment_declined');
    await assertMatches(model, real, this.toString());
  }
  toString = () => `declinedPurchase(${usd(this.amount())})`;
}

/**
 * FPS answers Pending (.13 succeeds later, .14 fails later); every IPN arrives twice, and 'late' ones
 * 6 s after the outcome, when the workflow's first status poll (5 s) has already decided it.
 */
class PendingPurchase implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly dollars: number,
    readonly cents: 13 | 14,
    readonly ipn: 'duplicated' | 'late',
  ) {}
  check = (model: Readonly<Model>) => buying(model) && model.debt + this.amount() <= LIMIT;
  amount = () => this.dollars * 100 + this.cents;
  async run(model: Model, real: Real) {
    await sandboxPost(real, '/admin/ipn', { duplicate: 1, delayMs: this.ipn === 'late' ? 6_000 : 0 });
    try {
      const key = freshKey('pending');
      const answer = await post(real, 'purchases', key, { amount: usd(this.amount()), currency: 'USD' });
      assert.equal(answer.status, 202, answer.text);
      if (this.cents === 13) {
        charge(model, this.amount());
        model.purchases.push({ key, amount: this.amount(), refunded: 0, transactionId: answer.body.transactionId });
      }
      await assertMatches(model, real, this.toString());
    } finally {
      await sandboxPost(real, '/admin/ipn', { duplicate: 0, delayMs: 0 });
    }
  }
  toString = () => `pendingPurchase(${usd(this.amount())}, IPNs ${this.ipn === 'late' ? 'late and ' : ''}duplicated)`;
}

type Fault = 'drop' | 'InternalError' | 'Throttling';
/** The next Pay meets a sandbox fault; the workflow's retries must charge it exactly once. */
class FaultedPurchase implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly amount: number,
    readonly fault: Fault,
  ) {}
  check = (model: Readonly<Model>) => buying(model) && model.debt + this.amount <= LIMIT;
  async run(model: Model, real: Real) {
    const spec = this.fault === 'drop' ? { kind: 'drop' } : { kind: 'error', code: this.fault };
    await sandboxPost(real, '/admin/faults', { ...spec, count: 1, actions: ['Pay'] }, 201);
    const key = freshKey('faulted');
    const answer = await post(real, 'purchases', key, { amount: usd(this.amount), currency: 'USD' });
    assert.equal(answer.status, 201, answer.text);
    model.purchases.push({ key, amount: this.amount, refunded: 0, transactionId: answer.body.transactionId });
    charge(model, this.amount);
    await assertMatches(model, real, this.toString());
  }
  toString = () => `faultedPurchase(${usd(this.amount)}, ${this.fault})`;
}

class PurchaseAgain implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly concurrent: boolean,
  ) {}
  check = (model: Readonly<Model>) => open(model) && model.purchases.length > 0;
  async run(model: Model, real: Real) {
    const p = model.purchases[this.pick % model.purchases.length];
    const body = { amount: usd(p.amount), currency: 'USD' };
    const answers = await Promise.all(
      Array.from({ length: this.concurrent ? 2 : 1 }, () => post(real, 'purchases', p.key, body)),
    );
    for (const answer of answers) {
      assert.ok([200, 201].includes(answer.status), answer.text);
      assert.equal(answer.body.transactionId, p.transactionId, 'the original transaction');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `purchaseAgain(#${this.pick}${this.concurrent ? ', concurrently' : ''})`;
}

class SameKeyOtherAmount implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => open(model) && model.purchases.length > 0;
  async run(model: Model, real: Real) {
    const p = model.purchases[this.pick % model.purchases.length];
    const answer = await post(real, 'purchases', p.key, { amount: usd(p.amount + 1), currency: 'USD' });
    assert.equal(answer.status, 409, answer.text);
    assert.equal(answer.body.code, 'idempotency_key_reused');
    await assertMatches(model, real, this.toString());
  }
  toString = () => `sameKeyOtherAmount(#${this.pick})`;
}

/** Settle on demand: all of the debt, or part of it. */
class Settle implements fc.AsyncCommand<Model, Real> {
  constructor(readonly share: number | undefined) {}
  check = (model: Readonly<Model>) => open(model) && model.debt > 0;
  async run(model: Model, real: Real) {
    const amount = this.share === undefined ? model.debt : Math.max(1, Math.floor(model.debt * this.share));
    const body = this.share === undefined ? {} : { amount: usd(amount), currency: 'USD' };
    const answer = await post(real, 'settle', freshKey('settle'), body);
    const cents = amount % 100;
    const status = cents === 13 || cents === 14 ? 202 : fpsSucceeds(amount) ? 200 : 402;
    assert.equal(answer.status, status, answer.text);
    settled(model, amount);
    await assertMatches(model, real, this.toString());
  }
  toString = () => `settle(${this.share === undefined ? 'all' : this.share.toFixed(2)})`;
}

class Refund implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly kind: 'full' | 'partial' | 'tooMuch',
    readonly share: number,
  ) {}
  check = (model: Readonly<Model>) => open(model) && model.purchases.length > 0;
  async run(model: Model, real: Real) {
    const p = model.purchases[this.pick % model.purchases.length];
    const left = p.amount - p.refunded;
    let amount: number | undefined;
    if (this.kind === 'tooMuch') amount = left + 1;
    else if (this.kind === 'partial') amount = Math.max(1, Math.floor(left * this.share));
    const body =
      amount === undefined ? { purchaseId: p.key } : { purchaseId: p.key, amount: usd(amount), currency: 'USD' };
    const answer = await post(real, 'refunds', freshKey('refund'), body);
    const refund = amount ?? left;
    if (left > 0 && refund <= left) {
      assert.equal(answer.status, 201, answer.text);
      p.refunded += refund;
      model.debt = Math.max(0, model.debt - refund);
    } else {
      assert.equal(answer.status, 422, answer.text);
      assert.equal(answer.body.code, 'limit_exceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `refund(#${this.pick}, ${this.kind}${this.kind === 'partial' ? ` ${this.share.toFixed(2)}` : ''})`;
}

/** Write off the whole debt: the account closes; no command runs after it (so not too early). */
class WriteOff implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>) => open(model) && model.debt > 0 && model.purchases.length >= 6;
  async run(model: Model, real: Real) {
    const answer = await post(real, 'write-off', freshKey('writeoff'), {});
    assert.ok([200, 202].includes(answer.status), answer.text);
    model.debt = 0;
    model.state = 'closed';
    await assertMatches(model, real, this.toString());
  }
  toString = () => 'writeOff()';
}

async function sandboxPost(real: Real, path: string, body: unknown, expected = 200): Promise<void> {
  const response = await fetch(`${real.stack.sandboxUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, expected, `${path}: ${await response.text()}`);
}

const dollars = fc.integer({ min: 0, max: 8 });
const share = fc.double({ min: 0.1, max: 0.9, noNaN: true });
const commands = fc.commands(
  [
    plainAmount.map((a) => new Purchase(a)),
    plainAmount.map((a) => new Purchase(a)),
    fc.tuple(dollars, fc.constantFrom<51 | 52>(51, 52)).map(([d, c]) => new DeclinedPurchase(d, c)),
    fc
      .tuple(dollars, fc.constantFrom<13 | 14>(13, 14), fc.constantFrom<'duplicated' | 'late'>('duplicated', 'late'))
      .map(([d, c, i]) => new PendingPurchase(d, c, i)),
    fc
      .tuple(plainAmount, fc.constantFrom<Fault>('drop', 'InternalError', 'Throttling'))
      .map(([a, f]) => new FaultedPurchase(a, f)),
    fc.tuple(fc.nat(), fc.boolean()).map(([i, c]) => new PurchaseAgain(i, c)),
    fc.nat().map((i) => new SameKeyOtherAmount(i)),
    fc.option(share, { nil: undefined }).map((s) => new Settle(s)),
    fc
      .tuple(fc.nat(), fc.constantFrom<'full' | 'partial' | 'tooMuch'>('full', 'partial', 'tooMuch'), share)
      .map(([i, k, s]) => new Refund(i, k, s)),
    fc.constant(new WriteOff()),
  ],
  { maxCommands: COMMANDS, size: 'max' },
);

describe('model: random command sequences on a postpaid instrument', function () {
  this.timeout(Math.max(300_000, RUNS * COMMANDS * 8_000, TARGET * 1_000));

  afterEach(async () => {
    const stack = await getStack();
    await fetch(`${stack.sandboxUrl}/admin/faults`, { method: 'DELETE' }).catch(() => undefined);
  });

  it(`API snapshot equals the model after every command; FPS ledger and reconciliation agree (seed ${SEED})`, async () => {
    const stack = await getStack();
    const customerId = `model-postpaid-${SEED.toString(36)}`;
    await runModel('postpaid', { runs: RUNS, commands: COMMANDS }, (counts) =>
      fc.asyncProperty(commands, async (cmds) => {
        const { instrumentId } = await activeInstrument(stack, customerId, {
          type: 'postpaid',
          creditLimit: usd(LIMIT),
          globalAmountLimit: usd(1_000_000),
          currency: 'USD',
        });
        const real: Real = { stack, instrumentId, commands: 0 };
        await fc.asyncModelRun(
          () => ({
            model: { debt: 0, purchases: [], state: 'active' as const, failures: 0, retryScheduled: false },
            real,
          }),
          cmds,
        );
        counts.commands += real.commands;
      }),
    );
    const report = await reconcileUntilSettled({
      client: stack.client,
      ledger: new SandboxLedger(stack.sandboxUrl),
      customerId,
      waitMs: 30_000,
    });
    assert.ok(report.ok, formatReport(report));
  });
});
