// Random command sequences (fast-check fc.commands + fc.asyncModelRun) against a prepaid instrument
// on the real stack (sandbox, worker, API processes): after every command the API's snapshot equals a
// small reference model written here (not derived from machines/), and at the end the FPS ledger
// agrees (scripts/lib/reconcile.ts finds nothing). Twice: on an instrument created through the API,
// and on one started with a window of 5 processed ids, so that most retries (the same purchase
// again, the same key with another amount) and refunds are of operations the workflow no longer
// remembers and only the record (issue 12) can answer. With MODEL_RESTARTS=1 (the long run), once
// per run the worker is killed while a purchase is on its way, and restarted. Sizes come from the environment; the defaults
// are CI-sized. `MODEL_SEED=… MODEL_RUNS=… MODEL_COMMANDS=… npm run test:model` replays or runs long.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatDecimal } from '../../fps/money';
import { formatReport, reconcileUntilSettled, SandboxLedger } from '../../scripts/lib/reconcile';
import { CallbackVerifier } from '../../fps/callback-verifier';
import {
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  workflowIdFor,
  type InstrumentInput,
  type InstrumentSettings,
} from '../../workflows/messages';
import type { instrumentWorkflow } from '../../workflows';
import { activeInstrument, call, getStack, until, type Answer, type Stack } from '../api/stack';
import { authorize, type SandboxProcess } from '../workflow/instrument-env';
import { runModel, SEED, TARGET } from './run';

const RUNS = Number(process.env.MODEL_RUNS ?? 4);
const COMMANDS = Number(process.env.MODEL_COMMANDS ?? 30);
const FUNDING = 2000;

/** What the merchant should see: money in minor units, purchases by key. */
interface Model {
  balance: number;
  purchases: Array<{ key: string; amount: number; refunded: number; transactionId: string }>;
  /** Worker restarts so far in this run (at most one: a restart costs seconds). */
  restarts: number;
}

interface Real {
  stack: Stack;
  instrumentId: string;
  commands: number;
}

const usd = (minor: number) => formatDecimal(minor, 'USD');
let keyCounter = 0;
const freshKey = (what: string) => `m${SEED.toString(36)}-${what}-${++keyCounter}`;

function post(real: Real, route: string, key: string, body: unknown): Promise<Answer> {
  real.commands++;
  return call(real.stack, 'POST', `/instruments/${real.instrumentId}/${route}`, {
    body,
    headers: { 'idempotency-key': key },
  });
}

async function assertMatches(model: Model, real: Real, after: string): Promise<void> {
  const got = await call(real.stack, 'GET', `/instruments/${real.instrumentId}`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.balance.minorUnits, model.balance, `balance after ${after}`);
  assert.equal(got.body.state, model.balance > 0 ? 'active' : 'depleted', `state after ${after}`);
  assert.deepEqual(got.body.pending, [], `nothing pending after ${after}`);
}

/** Ordinary cents only: the magic ones (.13 .14 .51 .52) are another command's business. */
const plainAmount = fc.integer({ min: 1, max: 900 }).filter((n) => ![13, 14, 51, 52].includes(n % 100));

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
    const p = model.purchases[this.pick % model.purchases.length];
    const body = { amount: usd(p.amount), currency: 'USD' };
    const answers = await Promise.all(
      Array.from({ length: this.concurrent ? 2 : 1 }, () => post(real, 'purchases', p.key, body)),
    );
    for (const answer of answers) {
      assert.ok(answer.status === 200 || answer.status === 201, answer.text);
      assert.equal(answer.body.transactionId, p.transactionId, 'the original transaction');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `purchaseAgain(#${this.pick}${this.concurrent ? ', concurrently' : ''})`;
}

class SameKeyOtherAmount implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.purchases.length > 0;
  async run(model: Model, real: Real) {
    const p = model.purchases[this.pick % model.purchases.length];
    const answer = await post(real, 'purchases', p.key, { amount: usd(p.amount + 1), currency: 'USD' });
    assert.equal(answer.status, 409, answer.text);
    assert.equal(answer.body.code, 'idempotency_key_reused');
    await assertMatches(model, real, this.toString());
  }
  toString = () => `sameKeyOtherAmount(#${this.pick})`;
}

/** 'full': what is left; 'partial': part of it; 'tooMuch': one cent more than is left. */
class Refund implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly kind: 'full' | 'partial' | 'tooMuch',
    readonly share: number,
  ) {}
  check = (model: Readonly<Model>) => model.purchases.length > 0;
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
      model.balance += refund;
    } else {
      assert.equal(answer.status, 422, answer.text);
      assert.equal(answer.body.code, 'limit_exceeded');
    }
    await assertMatches(model, real, this.toString());
  }
  toString = () => `refund(#${this.pick}, ${this.kind}${this.kind === 'partial' ? ` ${this.share.toFixed(2)}` : ''})`;
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
 * The worker dies (SIGKILL) while a purchase is on its way, and comes back: the purchase is
 * answered once the worker is back and charged exactly once.
 */
class WorkerRestart implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = (model: Readonly<Model>) => model.restarts === 0 && this.amount <= model.balance;
  async run(model: Model, real: Real) {
    model.restarts++;
    await real.stack.worker.kill9();
    const key = freshKey('restart-buy');
    const answer = post(real, 'purchases', key, { amount: usd(this.amount), currency: 'USD' });
    await real.stack.worker.restart();
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
    fc
      .tuple(
        fc.nat(),
        fc.constantFrom('full', 'partial', 'tooMuch') as fc.Arbitrary<'full' | 'partial' | 'tooMuch'>,
        fc.double({ min: 0.1, max: 0.9, noNaN: true }),
      )
      .map(([i, k, s]) => new Refund(i, k, s)),
    plainAmount.map((a) => new Fund(a)),
  ],
  { maxCommands: COMMANDS, size: 'max' },
);

/** A prepaid instrument started the way the API starts one, but with its own settings (the API takes none). */
async function instrumentWithSettings(stack: Stack, customerId: string, settings: InstrumentSettings): Promise<string> {
  const input: InstrumentInput = {
    instrumentId: `ins_mw${SEED.toString(36)}${(++keyCounter).toString(36)}`,
    customerId,
    type: 'prepaid',
    currency: 'USD',
    fundingAmount: FUNDING,
    settings,
  };
  const handle = await stack.client.workflow.start<typeof instrumentWorkflow>(INSTRUMENT_WORKFLOW_TYPE, {
    taskQueue: stack.taskQueue,
    workflowId: workflowIdFor(input.instrumentId),
    args: [input],
    typedSearchAttributes: instrumentSearchAttributes(input),
    staticSummary: instrumentStaticSummary(input),
  });
  const sandbox = {
    url: stack.sandboxUrl,
    verifier: new CallbackVerifier({ certificateUrlAllowlist: [`${stack.sandboxUrl}/certs/`] }),
  } as SandboxProcess;
  await authorize(sandbox, handle, input);
  await until(`instrument ${input.instrumentId} active`, async () => {
    const got = await call(stack, 'GET', `/instruments/${input.instrumentId}`);
    return got.status === 200 && got.body.state === 'active' && got.body.pending.length === 0;
  });
  return input.instrumentId;
}

/** The workflow remembers this many answers; older retries and refunds go to the record (issue 12). */
const SMALL_WINDOW = 5;

describe('model: random command sequences on a prepaid instrument', function () {
  this.timeout(Math.max(240_000, RUNS * COMMANDS * 5_000, TARGET * 1_000));

  const variants = [
    { name: 'created through the API', window: undefined },
    {
      name: `a window of ${SMALL_WINDOW} processed ids (retries and refunds of older operations)`,
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
            const real: Real = { stack, instrumentId, commands: 0 };
            try {
              await fc.asyncModelRun(() => ({ model: { balance: FUNDING, purchases: [], restarts: 0 }, real }), cmds);
            } finally {
              counts.commands += real.commands;
            }
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
  }
});
