// The FPS activities against a scripted gateway (no server): what they send, and how FPS errors
// become Temporal failures (retryable ones rethrown for a retry, final ones non-retryable).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { createFpsActivities, fpsFailureDetails } from '../../activities/fps-activities';
import type { FpsAction, FpsRequest, FpsResult, PaymentGateway } from '../../fps/actions';
import { FpsError } from '../../fps/errors';

class ScriptedGateway implements PaymentGateway {
  calls: Array<{ action: FpsAction; request: unknown }> = [];
  constructor(private readonly answer: (action: FpsAction, request: unknown) => unknown) {}
  async call<A extends FpsAction>(action: A, request: FpsRequest<A>): Promise<FpsResult<A>> {
    this.calls.push({ action, request });
    return this.answer(action, request) as FpsResult<A>;
  }
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const USD = (amount: number) => ({ amount, currency: 'USD' });
const payInput = {
  instrumentId: 'inst-1',
  callerReference: 'inst-1:pay:order-1',
  senderTokenId: 'TOKEN',
  amount: USD(1250),
  description: 'a book',
};

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `expected ApplicationFailure, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}

describe('FPS activities', () => {
  it('pay sends the workflow-decided CallerReference and amount, and returns the transaction', async () => {
    const gateway = new ScriptedGateway(() => ({
      transactionId: 'TX1',
      transactionStatus: 'Success',
      requestId: 'REQ',
    }));
    const { logger, lines } = capturingLogger();
    const result = await createFpsActivities(gateway, { logger }).pay(payInput);
    assert.deepEqual(result, { transactionId: 'TX1', transactionStatus: 'Success', requestId: 'REQ' });
    assert.deepEqual(gateway.calls, [
      {
        action: 'Pay',
        request: {
          senderTokenId: 'TOKEN',
          transactionAmount: USD(1250),
          callerReference: 'inst-1:pay:order-1',
          senderDescription: 'a book',
        },
      },
    ]);
    assert.equal(lines[0].callerReference, 'inst-1:pay:order-1');
    assert.equal(lines[0].transactionId, 'TX1');
    assert.equal(lines[0].instrumentId, 'inst-1');
    assert.equal(lines[0].action, 'Pay');
  });

  it('a retryable FPS error is rethrown as a retryable failure of type FpsError:<Code>', async () => {
    const gateway = new ScriptedGateway(() => {
      throw new FpsError('ServiceUnavailable', 'busy', 'REQ-2', 503);
    });
    const failure = await failureOf(createFpsActivities(gateway).pay(payInput));
    assert.equal(failure.type, 'FpsError:ServiceUnavailable');
    assert.equal(failure.nonRetryable, false);
    assert.deepEqual(fpsFailureDetails(failure), {
      code: 'ServiceUnavailable',
      message: 'ServiceUnavailable: busy',
      requestId: 'REQ-2',
      httpStatus: 503,
    });
  });

  it('timeouts and network errors are retryable too', async () => {
    for (const code of ['Timeout', 'NetworkError']) {
      const gateway = new ScriptedGateway(() => {
        throw new FpsError(code, 'no answer', undefined, undefined);
      });
      assert.equal(
        (
          await failureOf(
            createFpsActivities(gateway).fundPrepaid({
              instrumentId: 'i',
              callerReference: 'i:fund:initial',
              prepaidInstrumentId: 'P',
              fundingTokenId: 'F',
              amount: USD(5),
            }),
          )
        ).nonRetryable,
        false,
      );
    }
  });

  it('a final FPS answer is a non-retryable failure carrying the code, message and request id', async () => {
    const gateway = new ScriptedGateway(() => {
      throw new FpsError('InsufficientBalance', 'balance too low', 'REQ-3', 400);
    });
    const failure = await failureOf(createFpsActivities(gateway).pay(payInput));
    assert.equal(failure.type, 'FpsError:InsufficientBalance');
    assert.equal(failure.nonRetryable, true);
    assert.equal(fpsFailureDetails(failure)?.requestId, 'REQ-3');
  });

  it('DuplicateRequest is non-retryable and logged as an error', async () => {
    const gateway = new ScriptedGateway(() => {
      throw new FpsError('DuplicateRequest', 'same reference, other parameters', 'REQ-4', 400);
    });
    const { logger, lines } = capturingLogger();
    const failure = await failureOf(
      createFpsActivities(gateway, { logger }).settleDebt({
        instrumentId: 'i',
        callerReference: 'i:settle:s1',
        creditInstrumentId: 'C',
        settlementTokenId: 'S',
        amount: USD(100),
      }),
    );
    assert.equal(failure.nonRetryable, true);
    assert.equal(failure.type, 'FpsError:DuplicateRequest');
    const error = lines.find((l) => l.level === 50);
    assert.ok(error, 'an error line');
    assert.equal(error.callerReference, 'i:settle:s1');
  });

  it('anything that is not an FpsError is rethrown unchanged', async () => {
    const bug = new TypeError('boom');
    const gateway = new ScriptedGateway(() => {
      throw bug;
    });
    await assert.rejects(createFpsActivities(gateway).pay(payInput), (err) => err === bug);
  });

  it('the other actions map their inputs onto the FPS requests', async () => {
    const gateway = new ScriptedGateway((action) =>
      action === 'GetPrepaidBalance'
        ? { availableBalance: USD(1), prepaidFundingBalance: USD(2) }
        : action === 'GetDebtBalance'
          ? { availableBalance: USD(3), pendingOutBalance: USD(4) }
          : action === 'CancelToken'
            ? {}
            : action === 'GetTransactionStatus'
              ? {
                  transactionId: 'T',
                  transactionStatus: 'Pending',
                  callerReference: 'c',
                  statusCode: 'PendingNetworkResponse',
                  statusMessage: '',
                }
              : { transactionId: 'T', transactionStatus: 'Success' },
    );
    const a = createFpsActivities(gateway);
    await a.reserve({ ...payInput, callerReference: 'inst-1:reserve:o' });
    await a.settle({ instrumentId: 'i', reserveTransactionId: 'R', amount: USD(10) });
    await a.refund({ instrumentId: 'i', callerReference: 'i:refund:r', transactionId: 'T0', amount: USD(5) });
    await a.cancel({ instrumentId: 'i', transactionId: 'R' });
    await a.writeOffDebt({
      instrumentId: 'i',
      callerReference: 'i:writeoff:w',
      creditInstrumentId: 'C',
      amount: USD(7),
    });
    assert.deepEqual(await a.getPrepaidBalance({ instrumentId: 'i', prepaidInstrumentId: 'P' }), {
      available: USD(1),
      pending: USD(2),
    });
    assert.deepEqual(await a.getDebtBalance({ instrumentId: 'i', creditInstrumentId: 'C' }), {
      available: USD(3),
      pending: USD(4),
    });
    assert.equal(
      (await a.getTransactionStatus({ instrumentId: 'i', transactionId: 'T' })).statusCode,
      'PendingNetworkResponse',
    );
    await a.cancelToken({ instrumentId: 'i', tokenId: 'TOK', reason: 'closed' });
    assert.deepEqual(
      gateway.calls.map((c) => c.action),
      [
        'Reserve',
        'Settle',
        'Refund',
        'Cancel',
        'WriteOffDebt',
        'GetPrepaidBalance',
        'GetDebtBalance',
        'GetTransactionStatus',
        'CancelToken',
      ],
    );
    assert.deepEqual(gateway.calls[1].request, { reserveTransactionId: 'R', transactionAmount: USD(10) });
    assert.deepEqual(gateway.calls[2].request, {
      transactionId: 'T0',
      callerReference: 'i:refund:r',
      refundAmount: USD(5),
    });
    assert.deepEqual(gateway.calls[4].request, {
      creditInstrumentId: 'C',
      adjustmentAmount: USD(7),
      callerReference: 'i:writeoff:w',
    });
    assert.deepEqual(gateway.calls[8].request, { tokenId: 'TOK', reasonText: 'closed' });
  });
});
