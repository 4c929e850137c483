// What the three model suites share: the stack and the instruments they drive, the plumbing of
// their commands (API calls with an Idempotency-Key, sandbox faults, snapshot polling, the same
// purchase again, refund sizes), the check that an operation hit by a timeout fault is counted
// once everywhere, and the final checks (FPS ledger, record and workflows reconcile).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CallbackVerifier } from '../../fps/callback-verifier';
import { formatDecimal } from '../../fps/money';
import { formatReport, reconcileUntilSettled, SandboxLedger } from '../../scripts/lib/reconcile';
import { openLedgerDb } from '../../store/db';
import { LedgerStore } from '../../store/ledger';
import {
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  workflowIdFor,
  type InstrumentInput,
} from '../../workflows/messages';
import type { instrumentWorkflow } from '../../workflows';
import { call, until, type Answer, type Stack } from '../api/stack';
import { spawnService, type Service } from '../support/processes';
import { uniqueTaskQueue } from '../support/temporal';
import { authorize, type SandboxProcess } from '../workflow/instrument-env';
import { SEED } from './run';

export { activeInstrument, getStack, type Answer, type Stack } from '../api/stack';

export const usd = (minor: number) => formatDecimal(minor, 'USD');

/** The instrument a run drives, and the API commands sent to it. */
export interface Real {
  stack: Stack;
  instrumentId: string;
  commands: number;
  /** Its workflow runs on the model worker (FPS calls time out after MODEL_FPS_TIMEOUT_MS). */
  shortTimeout: boolean;
}

/** Fresh ids for one suite: `<prefix><seed>-<what>-<n>`, unique per run. */
export function idMaker(prefix: string): (what: string) => string {
  let counter = 0;
  return (what) => `${prefix}${SEED.toString(36)}-${what}-${++counter}`;
}

/** POST /instruments/{id}/{route} with an Idempotency-Key; counts the command. */
export function post(real: Real, route: string, key: string, body: unknown): Promise<Answer> {
  real.commands++;
  return call(real.stack, 'POST', `/instruments/${real.instrumentId}/${route}`, {
    body,
    headers: { 'idempotency-key': key },
  });
}

export function snapshot(real: Real): Promise<Answer> {
  return call(real.stack, 'GET', `/instruments/${real.instrumentId}`);
}

/**
 * Polls the snapshot until `matches` (what the workflow does by itself, settlements and IPNs, takes
 * a moment); fails with `describe(last)` when it does not within 15 s.
 */
export async function untilSnapshot(
  real: Real,
  after: string,
  matches: (body: any) => boolean, // the snapshot's JSON
  describe: (last: Answer | undefined) => string,
): Promise<void> {
  let last: Answer | undefined;
  await until(
    `snapshot after ${after}`,
    async () => {
      last = await snapshot(real);
      return last.status === 200 && last.body.pending.length === 0 && matches(last.body);
    },
    15_000,
    50,
  ).catch(() => {
    assert.fail(`after ${after}: ${describe(last)}`);
  });
}

export function refused(answer: Answer, status: number, code: string, what: string): void {
  assert.equal(answer.status, status, `${what}: ${answer.text}`);
  assert.equal(answer.body.code, code, what);
}

/** Ordinary cents only: the magic ones (.13 .14 .51 .52, sandbox/magic.ts) are other commands' business. */
export const plainAmount = fc.integer({ min: 1, max: 900 }).filter((n) => ![13, 14, 51, 52].includes(n % 100));
export const share = fc.double({ min: 0.1, max: 0.9, noNaN: true });
export type RefundKind = 'full' | 'partial' | 'tooMuch';
export const refundKind = fc.constantFrom<RefundKind>('full', 'partial', 'tooMuch');

/**
 * A refund of `left` (what is still refundable): 'full' sends no amount (all of it), 'partial' part
 * of it, 'tooMuch' one cent more. `amount` is what the refund asks for.
 */
export function refundRequest(
  purchaseId: string,
  left: number,
  kind: RefundKind,
  fraction: number,
): { amount: number; body: Record<string, string> } {
  if (kind === 'full') return { amount: left, body: { purchaseId } };
  const amount = kind === 'tooMuch' ? left + 1 : Math.max(1, Math.floor(left * fraction));
  return { amount, body: { purchaseId, amount: usd(amount), currency: 'USD' } };
}
export const refundLabel = (kind: RefundKind, fraction: number) =>
  `${kind}${kind === 'partial' ? ` ${fraction.toFixed(2)}` : ''}`;

/** The same purchase again (once, or twice at the same time): the original answer, no money moves. */
export async function purchaseAgain(
  real: Real,
  p: { key: string; amount: number; transactionId: string },
  concurrent: boolean,
): Promise<void> {
  const body = { amount: usd(p.amount), currency: 'USD' };
  const answers = await Promise.all(
    Array.from({ length: concurrent ? 2 : 1 }, () => post(real, 'purchases', p.key, body)),
  );
  for (const answer of answers) {
    assert.ok([200, 201].includes(answer.status), answer.text);
    assert.equal(answer.body.transactionId, p.transactionId, 'the original transaction');
  }
}

/** The same key with another amount: refused, nothing happens. */
export async function sameKeyOtherAmount(real: Real, p: { key: string; amount: number }): Promise<void> {
  const answer = await post(real, 'purchases', p.key, { amount: usd(p.amount + 1), currency: 'USD' });
  refused(answer, 409, 'idempotency_key_reused', 'the same key with another amount');
}

// ---- sandbox faults ----------------------------------------------------------------------------

export async function sandboxPost(stack: Stack, path: string, body: unknown, expected = 200): Promise<void> {
  const response = await fetch(`${stack.sandboxUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, expected, `${path}: ${await response.text()}`);
}

/**
 * What the next FPS request of an action meets (sandbox/faults.ts): its answer dropped after the
 * work was done, an error (500, 503), or 'timeout': the sandbox waits MODEL_FPS_TIMEOUT_MS + 1 s
 * before doing the work and answering, so the attempt gives up first and the retry (the same
 * CallerReference) races the late original. Only on an instrument of the model worker.
 */
export type Fault = 'none' | 'drop' | 'InternalError' | 'Throttling' | 'timeout';

/** One FPS call attempt of the model worker gives up after this long (FPS_TIMEOUT_MS). */
export const MODEL_FPS_TIMEOUT_MS = 1_500;

export async function injectFault(real: Real, fault: Fault, action: string): Promise<void> {
  if (fault === 'none') return;
  if (fault === 'timeout') assert.ok(real.shortTimeout, 'a timeout fault needs an instrument of the model worker');
  const spec =
    fault === 'drop'
      ? { kind: 'drop' }
      : fault === 'timeout'
        ? { kind: 'delay', ms: MODEL_FPS_TIMEOUT_MS + 1_000 }
        : { kind: 'error', code: fault };
  await sandboxPost(real.stack, '/admin/faults', { ...spec, count: 1, actions: [action] }, 201);
}
export const faultNote = (fault: Fault) => (fault === 'none' ? '' : `, FPS ${fault}`);

/** Empties the sandbox's fault queue after each test (a fault a failed command left behind). */
export function clearFaultsAfterEach(getStack: () => Promise<Stack>): void {
  afterEach(async () => {
    const stack = await getStack();
    await fetch(`${stack.sandboxUrl}/admin/faults`, { method: 'DELETE' }).catch(() => undefined);
  });
}

// ---- counted once ------------------------------------------------------------------------------

/**
 * The operation `id` (its Idempotency-Key) of `real`'s instrument, answered `answer`, is counted
 * once in the workflow (one entry in the snapshot's recent transactions), once at FPS (one
 * transaction with its CallerReference) and once in the record (one row), each with the answer's
 * transaction and amount.
 */
export async function assertCountedOnce(real: Real, id: string, answer: Answer, amount: number): Promise<void> {
  const { callerReference, transactionId } = answer.body;
  assert.ok(callerReference && transactionId, `the answer names its transaction: ${answer.text}`);
  const got = await snapshot(real);
  const inWorkflow = got.body.transactions.filter((t: { id: string }) => t.id === id);
  assert.equal(inWorkflow.length, 1, `${id} once in the workflow: ${JSON.stringify(got.body.transactions)}`);
  assert.equal(inWorkflow[0].transactionId, transactionId);
  assert.equal(inWorkflow[0].amount.minorUnits, amount);

  const fps = await fetch(
    `${real.stack.sandboxUrl}/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`,
  ).then((r) => r.json() as Promise<{ transactions: Array<{ id: string; amount: { amount: number } }> }>);
  const atFps = fps.transactions;
  assert.equal(atFps.length, 1, `${callerReference} once at FPS: ${JSON.stringify(fps)}`);
  assert.equal(atFps[0].id, transactionId);
  assert.equal(atFps[0].amount.amount, amount);

  // The record is written by an activity after the answer: wait for the row, then count.
  let rows: Array<{ id: string; transactionId?: string; amount: { amount: string } }> = [];
  await until(`${id} in the record`, async () => {
    const page = await call(real.stack, 'GET', `/instruments/${real.instrumentId}/transactions?limit=500`);
    assert.equal(page.status, 200, page.text);
    rows = page.body.data.filter((r: { callerReference: string }) => r.callerReference === callerReference);
    return rows.length > 0 && rows[0].transactionId !== undefined;
  });
  assert.equal(rows.length, 1, `${callerReference} once in the record: ${JSON.stringify(rows)}`);
  assert.equal(rows[0].transactionId, transactionId);
  assert.equal(rows[0].amount.amount, usd(amount));
}

// ---- instruments -------------------------------------------------------------------------------

let modelWorker: Promise<{ service: Service; taskQueue: string }> | undefined;

/**
 * The model suites' own worker, beside the stack's: the same environment on its own task queue,
 * with FPS calls that time out after MODEL_FPS_TIMEOUT_MS (the stack's worker waits 10 s, too long
 * for a CI-sized run). Started once per mocha run; the harness's teardown stops it.
 */
export function modelWorkerQueue(stack: Stack): Promise<string> {
  return startModelWorker(stack).then((w) => w.taskQueue);
}

/** The worker that runs `real`'s workflow: the stack's, or the model worker. */
export async function workerOf(real: Real): Promise<Service> {
  return real.shortTimeout ? (await startModelWorker(real.stack)).service : real.stack.worker;
}

function startModelWorker(stack: Stack): Promise<{ service: Service; taskQueue: string }> {
  modelWorker ??= (async () => {
    const taskQueue = uniqueTaskQueue('model');
    const service = await spawnService({
      name: 'model-worker',
      script: 'worker/main.ts',
      env: {
        ...stack.env,
        TEMPORAL_TASK_QUEUE: taskQueue,
        FPS_TIMEOUT_MS: String(MODEL_FPS_TIMEOUT_MS),
        METRICS_ENABLED: 'false',
      },
      readyLine: 'worker started',
      readyTimeoutMs: 120_000,
    });
    return { service, taskQueue };
  })();
  modelWorker.catch(() => (modelWorker = undefined));
  return modelWorker;
}

/**
 * An instrument started the way the API starts one (same input, search attributes and summary),
 * but with its own settings or task queue (the API takes neither), authorized through the CBUI,
 * and ready (active; a single-use one authorized).
 */
export async function startInstrument(
  stack: Stack,
  input: Omit<InstrumentInput, 'instrumentId' | 'currency'>,
  options: { taskQueue: string; tag: string },
): Promise<string> {
  const full: InstrumentInput = {
    instrumentId: `ins_${options.tag}${SEED.toString(36)}${(++instrumentCounter).toString(36)}`,
    currency: 'USD',
    ...input,
  };
  const handle = await stack.client.workflow.start<typeof instrumentWorkflow>(INSTRUMENT_WORKFLOW_TYPE, {
    taskQueue: options.taskQueue,
    workflowId: workflowIdFor(full.instrumentId),
    args: [full],
    typedSearchAttributes: instrumentSearchAttributes(full),
    staticSummary: instrumentStaticSummary(full),
  });
  const sandbox = {
    url: stack.sandboxUrl,
    verifier: new CallbackVerifier({ certificateUrlAllowlist: [`${stack.sandboxUrl}/certs/`] }),
  } as SandboxProcess;
  await authorize(sandbox, handle, full);
  await until(`instrument ${full.instrumentId} ready`, async () => {
    const got = await call(stack, 'GET', `/instruments/${full.instrumentId}`);
    return got.status === 200 && ['active', 'authorized'].includes(got.body.state) && got.body.pending.length === 0;
  });
  return full.instrumentId;
}
let instrumentCounter = 0;

// ---- the final checks ----------------------------------------------------------------------------

/**
 * Everything of `customerId` reconciles (scripts/lib/reconcile.ts finds nothing once transient
 * findings settle): the workflows against the FPS ledger, and with `record` three ways, the record too.
 */
export async function assertReconciles(stack: Stack, customerId: string, options: { record: boolean }): Promise<void> {
  const store = options.record ? new LedgerStore(await openLedgerDb(stack.env.LEDGER_DATABASE_URL)) : undefined;
  try {
    const report = await reconcileUntilSettled({
      client: stack.client,
      ledger: new SandboxLedger(stack.sandboxUrl),
      store,
      customerId,
      waitMs: 30_000,
    });
    assert.ok(report.ok, formatReport(report));
  } finally {
    await store?.close();
  }
}
