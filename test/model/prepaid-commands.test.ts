// Random command sequences (fast-check fc.commands + fc.asyncModelRun) against a prepaid instrument
// on the real stack (sandbox, worker, API processes): after every command the API's snapshot equals a
// small reference model written here (not derived from machines/), and at the end the FPS ledger
// and the record agree (scripts/lib/reconcile.ts, three ways, finds nothing). Twice: on an instrument created through the API,
// and on one started with a window of 5 processed ids, so that most retries (the same purchase
// again, the same key with another amount) and refunds are of operations the workflow no longer
// remembers and only the record (issue 12) can answer; that instrument runs on the model worker (FPS
// calls time out after 1.5 s), where a purchase or fund meets a timeout fault (the sandbox answers
// after the attempt gave up) and is counted once in the workflow, at FPS and in the record. With MODEL_RESTARTS=1 (the long run), once
// per run the worker is killed while a purchase is on its way, and restarted. Sizes come from the environment; the defaults
// are CI-sized. `MODEL_SEED=… MODEL_RUNS=… MODEL_COMMANDS=… npm run test:model` replays or runs long.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { InstrumentSettings } from '../../workflows/messages';
import { runModel, SEED, TARGET } from './run';
import {
  activeInstrument,
  assertReconciles,
  getStack,
  idMaker,
  plainAmount,
  post,
  purchaseAgain,
  refundKind,
  refundLabel,
  refundRequest,
  sameKeyOtherAmount,
  share,
  snapshot,
  startInstrument,
  assertCountedOnce,
  clearFaultsAfterEach,
  injectFault,
  modelWorkerQueue,
  workerOf,
  usd,
  type Real,
  type RefundKind,
  type Stack,
} from './support';

const RUNS = Number(process.env.MODEL_RUNS ?? 4);
const COMMANDS = Number(process.env.MODEL_COMMANDS ?? 30);
const FUNDING = 2000;

/** What the merchant should see: money in minor units, purchases by key. */
interface Model {
  balance: number;
  purchases: Array<{ key: string; amount: number; refunded: number; transactionId: string }>;
  /** Worker restarts so far in this run (at most one: a restart costs seconds). */
  restarts: number;
  /** The instrument runs on the model worker: timeout faults apply. */
  shortTimeout: boolean;
}

const freshKey = idMaker('m');

async function assertMatches(model: Model, real: Real, after: string): Promise<void> {
  const got = await snapshot(real);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.balance.minorUnits, model.balance, `balance after ${after}`);
  assert.equal(got.body.state, model.balance > 0 ? 'active' : 'depleted', `state after ${after}`);
  assert.deepEqual(got.body.pending, [], `nothing pending after ${after}`);
}

class Purchase implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const key = freshKey('buy');
    const answer = await post(real, 'purchases', key, { amount: usd(this.amount), currency: 'USD' });
    if (this.amount <= model.balance) {
      assert.equal(answer.status, 201, answer.text);
      assert.equal(answer.body.outcome, 'approved');
      model.balance -= this.amount;
      model.purchases.push({ key, amount: this.amount, refunded: 0, transactionId: answer.body.transactionId });
    } else {
      // Over the balance, an empty (depleted) wallet included: the customer must top up.
      assert.equal(answer.status, 422, answer.text);
      assert.equal(answer.body.code, 'limit_exceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `purchase(${usd(this.amount)})`;
}

/** The same purchase again (once, or twice at the same time): the original answer, no money moves. */
class PurchaseAgain implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly concurrent: boolean,
  ) {}
  check = (model: Readonly<Model>) => model.purchases.length > 0;
  async run(model: Model, real: Real) {
    await purchaseAgain(real, model.purchases[this.pick % model.purchases.length], this.concurrent);
    await assertMatches(model, real, this.toString());
  }
  toString = () => `purchaseAgain(#${this.pick}${this.concurrent ? ', concurrently' : ''})`;
}

class SameKeyOtherAmount implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.purchases.length > 0;
  async run(model: Model, real: Real) {
    await sameKeyOtherAmount(real, model.purchases[this.pick % model.purchases.length]);
    await assertMatches(model, real, this.toString());
  }
  toString = () => `sameKeyOtherAmount(#${this.pick})`;
}

/** 'full': what is left; 'partial': part of it; 'tooMuch': one cent more than is left. */
class Refund implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly kind: RefundKind,
    readonly share: number,
  ) {}
  check = (model: Readonly<Model>) => model.purchases.length > 0;
  async run(model: Model, real: Real) {
    const p = model.purchases[this.pick % model.purchases.length];
    const left = p.amount - p.refunded;
    const { amount: refund, body } = refundRequest(p.key, left, this.kind, this.share);
    const answer = await post(real, 'refunds', freshKey('refund'), body);
    if (left > 0 && refund <= left) {
      assert.equal(answer.status, 201, answer.text);
      p.refunded += refund;
      model.balance += refund;
    } else {
      assert.equal(answer.status, 422, answer.text);
      assert.equal(answer.body.code, 'limit_exceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `refund(#${this.pick}, ${refundLabel(this.kind, this.share)})`;
}

/** FundPrepaid: FPS refuses funding above the instrument's limit, the initial funding amount. */
class Fund implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const answer = await post(real, 'fund', freshKey('fund'), { amount: usd(this.amount), currency: 'USD' });
    if (model.balance + this.amount <= FUNDING) {
      assert.equal(answer.status, 201, answer.text);
      model.balance += this.amount;
    } else {
      assert.equal(answer.status, 402, answer.text);
      assert.equal(answer.body.declineCode, 'PrepaidFundingLimitExceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `fund(${usd(this.amount)})`;
}

/**
 * The next Pay (a purchase) or FundPrepaid (a fund) meets a timeout fault: the sandbox answers
 * after the attempt gave up, the retry carries the same CallerReference. One 201 with its
 * transaction, counted once in the workflow, once at FPS and once in the record.
 */
class TimedOut implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly what: 'purchase' | 'fund',
    readonly amount: number,
  ) {}
  check = (model: Readonly<Model>) =>
    model.shortTimeout &&
    (this.what === 'purchase' ? this.amount <= model.balance : model.balance + this.amount <= FUNDING);
  async run(model: Model, real: Real) {
    await injectFault(real, 'timeout', this.what === 'purchase' ? 'Pay' : 'FundPrepaid');
    const key = freshKey(`timeout-${this.what}`);
    const body = { amount: usd(this.amount), currency: 'USD' };
    const answer = await post(real, this.what === 'purchase' ? 'purchases' : 'fund', key, body);
    assert.equal(answer.status, 201, answer.text);
    if (this.what === 'purchase') {
      model.balance -= this.amount;
      model.purchases.push({ key, amount: this.amount, refunded: 0, transactionId: answer.body.transactionId });
    } else model.balance += this.amount;
    await assertMatches(model, real, this.toString());
    await assertCountedOnce(real, key, answer, this.amount);
  }
  toString = () => `${this.what}(${usd(this.amount)}, FPS timeout)`;
}

/**
 * The worker dies (SIGKILL) while a purchase is on its way, and comes back: the purchase is
 * answered once the worker is back and charged exactly once.
 */
class WorkerRestart implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = (model: Readonly<Model>) => model.restarts === 0 && this.amount <= model.balance;
  async run(model: Model, real: Real) {
    model.restarts++;
    const worker = await workerOf(real);
    await worker.kill9();
    const key = freshKey('restart-buy');
    const answer = post(real, 'purchases', key, { amount: usd(this.amount), currency: 'USD' });
    await worker.restart();
    const answered = await answer;
    assert.equal(answered.status, 201, answered.text);
    model.balance -= this.amount;
    model.purchases.push({ key, amount: this.amount, refunded: 0, transactionId: answered.body.transactionId });
    await assertMatches(model, real, this.toString());
  }
  toString = () => `workerRestart(purchase ${usd(this.amount)} while it is down)`;
}

const commands = fc.commands(
  [
    // A restart costs ~10 s: in long runs only (MODEL_RESTARTS=1, npm run test:model:long).
    ...(process.env.MODEL_RESTARTS === '1' ? [plainAmount.map((a) => new WorkerRestart(a))] : []),
    plainAmount.map((a) => new Purchase(a)),
    fc.tuple(fc.nat(), fc.boolean()).map(([i, c]) => new PurchaseAgain(i, c)),
    fc.nat().map((i) => new SameKeyOtherAmount(i)),
    fc.tuple(fc.nat(), refundKind, share).map(([i, k, s]) => new Refund(i, k, s)),
    plainAmount.map((a) => new Fund(a)),
    fc.tuple(fc.constantFrom<'purchase' | 'fund'>('purchase', 'fund'), plainAmount).map(([w, a]) => new TimedOut(w, a)),
  ],
  { maxCommands: COMMANDS, size: 'max' },
);

/**
 * A prepaid instrument started the way the API starts one, but with its own settings (the API takes
 * none), on the model worker (FPS calls time out after 1.5 s: timeout faults).
 */
async function instrumentWithSettings(stack: Stack, customerId: string, settings: InstrumentSettings): Promise<string> {
  return startInstrument(
    stack,
    { customerId, type: 'prepaid', fundingAmount: FUNDING, settings },
    { taskQueue: await modelWorkerQueue(stack), tag: 'mw' },
  );
}

/** The workflow remembers this many answers; older retries and refunds go to the record (issue 12). */
const SMALL_WINDOW = 5;

describe('model: random command sequences on a prepaid instrument', function () {
  this.timeout(Math.max(240_000, RUNS * COMMANDS * 5_000, TARGET * 1_000));

  clearFaultsAfterEach(getStack);

  const variants = [
    { name: 'created through the API', window: undefined },
    {
      name: `a window of ${SMALL_WINDOW} processed ids (retries and refunds of older operations), FPS timeouts`,
      window: SMALL_WINDOW,
    },
  ];
  for (const variant of variants) {
    it(`${variant.name}: API snapshot equals the model after every command; FPS ledger and reconciliation agree (seed ${SEED})`, async () => {
      const stack = await getStack();
      const customerId = `model-${variant.window ? 'w' : ''}${SEED.toString(36)}`;
      await runModel(
        `prepaid${variant.window ? ` (window ${variant.window})` : ''}`,
        { runs: RUNS, commands: COMMANDS },
        (counts) =>
          fc.asyncProperty(commands, async (cmds) => {
            const instrumentId = variant.window
              ? await instrumentWithSettings(stack, customerId, { processedIdLimit: variant.window })
              : (
                  await activeInstrument(stack, customerId, {
                    type: 'prepaid',
                    fundingAmount: usd(FUNDING),
                    currency: 'USD',
                  })
                ).instrumentId;
            const real: Real = { stack, instrumentId, commands: 0, shortTimeout: variant.window !== undefined };
            try {
              await fc.asyncModelRun(
                () => ({
                  model: { balance: FUNDING, purchases: [], restarts: 0, shortTimeout: real.shortTimeout },
                  real,
                }),
                cmds,
              );
            } finally {
              counts.commands += real.commands;
            }
          }),
      );
      await assertReconciles(stack, customerId, { record: true });
    });
  }
});
