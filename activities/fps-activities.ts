// The FPS activities: thin, typed wrappers around one PaymentGateway call each. The workflow
// decides every CallerReference and passes it in; activities invent no ids and read no clocks for
// them, and their inputs carry no secrets (token and instrument ids only work with our credentials).
// Retryable FPS answers are rethrown for Temporal to retry with the same CallerReference; final
// answers become non-retryable ApplicationFailures of type `FpsError:<Code>` for the workflow to map.
import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import type {
  FpsAction,
  FpsRequest,
  FpsResult,
  PaymentGateway,
  TransactionResult,
  TransactionStatus,
} from '../fps/actions';
import { isFpsError } from '../fps/errors';
import { formatDecimal, type Money } from '../fps/money';

import { fpsFailureType, type FpsFailureDetails } from './failures';
import type { RecordContext, RecordedOperation } from './record-contract';

export * from './failures';

interface Traced {
  /** For logs only. */
  instrumentId: string;
  /** What the record keeps of the operation (money activities; see record-activities.ts). */
  record?: RecordContext;
}

export interface PayInput extends Traced {
  callerReference: string;
  senderTokenId: string;
  amount: Money;
  description?: string;
}
export type ReserveInput = PayInput;
export interface SettleInput extends Traced {
  reserveTransactionId: string;
  /** Default: the whole reservation. */
  amount?: Money;
}
export interface RefundInput extends Traced {
  callerReference: string;
  transactionId: string;
  /** Default: everything still refundable. */
  amount?: Money;
}
export interface CancelInput extends Traced {
  transactionId: string;
  description?: string;
}
export interface FundPrepaidInput extends Traced {
  callerReference: string;
  prepaidInstrumentId: string;
  fundingTokenId: string;
  amount: Money;
}
export interface SettleDebtInput extends Traced {
  callerReference: string;
  creditInstrumentId: string;
  settlementTokenId: string;
  amount: Money;
}
export interface WriteOffDebtInput extends Traced {
  callerReference: string;
  creditInstrumentId: string;
  amount: Money;
}
export interface TransactionStatusInput extends Traced {
  transactionId: string;
  /** For logs: the operation being polled. */
  callerReference?: string;
}
export interface PrepaidBalanceInput extends Traced {
  prepaidInstrumentId: string;
}
export interface DebtBalanceInput extends Traced {
  creditInstrumentId: string;
}
export interface CancelTokenInput extends Traced {
  tokenId: string;
  reason?: string;
}

export interface MoneyResult {
  transactionId: string;
  transactionStatus: TransactionStatus;
  requestId?: string;
  /**
   * The record's row, when the call was asked to look first and found one to answer from
   * (`RecordContext.answerFromRecord`): nothing was sent, and the fields above repeat the row's
   * (a Declined row as Failure).
   */
  recorded?: RecordedOperation;
}
export interface StatusResult extends MoneyResult {
  callerReference: string;
  statusCode: string;
  statusMessage: string;
}
export interface BalanceResult {
  available: Money;
  /** Prepaid: funding on its way in; postpaid: settlement on its way out. */
  pending: Money;
}

export interface FpsActivityOptions {
  logger?: Logger;
}

/** Where the call runs, for the log line: workflow, attempt, local or not. Empty outside an activity. */
function activityFields(): Record<string, unknown> {
  try {
    const info = activityInfo();
    return {
      workflowId: info.workflowExecution?.workflowId,
      runId: info.workflowExecution?.runId,
      activityType: info.activityType,
      attempt: info.attempt,
      local: info.isLocal,
    };
  } catch {
    return {};
  }
}

export function createFpsActivities(gateway: PaymentGateway, options: FpsActivityOptions = {}) {
  const logger = options.logger;

  /** One gateway call with its log line and the FPS-error-to-Temporal-failure mapping. */
  async function call<A extends FpsAction>(
    action: A,
    request: FpsRequest<A>,
    trace: Traced & { callerReference?: string; amount?: Money },
  ): Promise<FpsResult<A> & { requestId?: string }> {
    const started = performance.now();
    const fields = {
      ...activityFields(),
      instrumentId: trace.instrumentId,
      action,
      callerReference: trace.callerReference,
      amount: trace.amount
        ? `${trace.amount.currency} ${formatDecimal(trace.amount.amount, trace.amount.currency)}`
        : undefined,
    };
    try {
      const result = (await gateway.call(action, request)) as FpsResult<A> & { requestId?: string };
      const tx = result as Partial<TransactionResult>;
      logger?.info(
        {
          ...fields,
          transactionId: tx.transactionId,
          transactionStatus: tx.transactionStatus,
          requestId: result.requestId,
          ms: Math.round(performance.now() - started),
        },
        'fps call',
      );
      return result;
    } catch (err) {
      throw toFailure(err, fields, performance.now() - started);
    }
  }

  function toFailure(err: unknown, fields: Record<string, unknown>, ms: number): unknown {
    if (!isFpsError(err)) {
      logger?.error({ ...fields, err, ms: Math.round(ms) }, 'fps call failed unexpectedly');
      return err;
    }
    const details: FpsFailureDetails = {
      code: err.code,
      message: err.message,
      requestId: err.requestId,
      httpStatus: err.httpStatus,
    };
    const logFields = {
      ...fields,
      code: err.code,
      requestId: err.requestId,
      httpStatus: err.httpStatus,
      retryable: err.retryable,
      ms: Math.round(ms),
    };
    if (err.retryable) {
      logger?.warn(logFields, 'fps call failed; will retry with the same CallerReference');
      return ApplicationFailure.retryable(err.message, fpsFailureType(err.code), details);
    }
    if (err.code === 'DuplicateRequest') {
      // The same CallerReference with different parameters: a bug in how references are derived.
      logger?.error(logFields, 'DuplicateRequest: CallerReference reused with different parameters');
    } else {
      logger?.info(logFields, 'fps call refused');
    }
    return ApplicationFailure.nonRetryable(err.message, fpsFailureType(err.code), details);
  }

  /**
   * Settle and Cancel carry no CallerReference. When an earlier call's answer was lost, the
   * retry finds the reservation already settled or cancelled (InvalidTransactionState); the
   * transaction's status then tells whether that earlier call did the job. This holds on any
   * attempt: the workflow's own re-send after exhausted retries is a new activity on attempt 1.
   */
  async function alreadyDone(
    err: unknown,
    transactionId: string,
    trace: Traced,
    done: TransactionStatus,
  ): Promise<MoneyResult | undefined> {
    const cause = err instanceof ApplicationFailure ? (err.details?.[0] as FpsFailureDetails | undefined) : undefined;
    if (cause?.code !== 'InvalidTransactionState') return undefined;
    const status = await call('GetTransactionStatus', { transactionId }, trace);
    return status.transactionStatus === done
      ? { transactionId: status.transactionId, transactionStatus: status.transactionStatus }
      : undefined;
  }

  const money = (r: TransactionResult & { requestId?: string }): MoneyResult => ({
    transactionId: r.transactionId,
    transactionStatus: r.transactionStatus,
    requestId: r.requestId,
  });

  return {
    async pay(input: PayInput): Promise<MoneyResult> {
      return money(
        await call(
          'Pay',
          {
            senderTokenId: input.senderTokenId,
            transactionAmount: input.amount,
            callerReference: input.callerReference,
            senderDescription: input.description,
          },
          input,
        ),
      );
    },

    async reserve(input: ReserveInput): Promise<MoneyResult> {
      return money(
        await call(
          'Reserve',
          {
            senderTokenId: input.senderTokenId,
            transactionAmount: input.amount,
            callerReference: input.callerReference,
            senderDescription: input.description,
          },
          input,
        ),
      );
    },

    async settle(input: SettleInput): Promise<MoneyResult> {
      try {
        return money(
          await call(
            'Settle',
            { reserveTransactionId: input.reserveTransactionId, transactionAmount: input.amount },
            input,
          ),
        );
      } catch (err) {
        const done = await alreadyDone(err, input.reserveTransactionId, input, 'Success');
        if (done) return done;
        throw err;
      }
    },

    async refund(input: RefundInput): Promise<MoneyResult> {
      return money(
        await call(
          'Refund',
          { transactionId: input.transactionId, callerReference: input.callerReference, refundAmount: input.amount },
          input,
        ),
      );
    },

    async cancel(input: CancelInput): Promise<MoneyResult> {
      try {
        return money(
          await call('Cancel', { transactionId: input.transactionId, description: input.description }, input),
        );
      } catch (err) {
        const done = await alreadyDone(err, input.transactionId, input, 'Cancelled');
        if (done) return done;
        throw err;
      }
    },

    async fundPrepaid(input: FundPrepaidInput): Promise<MoneyResult> {
      return money(
        await call(
          'FundPrepaid',
          {
            prepaidInstrumentId: input.prepaidInstrumentId,
            senderTokenId: input.fundingTokenId,
            fundingAmount: input.amount,
            callerReference: input.callerReference,
          },
          input,
        ),
      );
    },

    async settleDebt(input: SettleDebtInput): Promise<MoneyResult> {
      return money(
        await call(
          'SettleDebt',
          {
            creditInstrumentId: input.creditInstrumentId,
            senderTokenId: input.settlementTokenId,
            settlementAmount: input.amount,
            callerReference: input.callerReference,
          },
          input,
        ),
      );
    },

    async writeOffDebt(input: WriteOffDebtInput): Promise<MoneyResult> {
      return money(
        await call(
          'WriteOffDebt',
          {
            creditInstrumentId: input.creditInstrumentId,
            adjustmentAmount: input.amount,
            callerReference: input.callerReference,
          },
          input,
        ),
      );
    },

    async getTransactionStatus(input: TransactionStatusInput): Promise<StatusResult> {
      const r = await call('GetTransactionStatus', { transactionId: input.transactionId }, input);
      return {
        transactionId: r.transactionId,
        transactionStatus: r.transactionStatus,
        callerReference: r.callerReference,
        statusCode: r.statusCode,
        statusMessage: r.statusMessage,
        requestId: r.requestId,
      };
    },

    async getPrepaidBalance(input: PrepaidBalanceInput): Promise<BalanceResult> {
      const r = await call('GetPrepaidBalance', { prepaidInstrumentId: input.prepaidInstrumentId }, input);
      return { available: r.availableBalance, pending: r.prepaidFundingBalance };
    },

    async getDebtBalance(input: DebtBalanceInput): Promise<BalanceResult> {
      const r = await call('GetDebtBalance', { creditInstrumentId: input.creditInstrumentId }, input);
      return { available: r.availableBalance, pending: r.pendingOutBalance };
    },

    async cancelToken(input: CancelTokenInput): Promise<void> {
      await call('CancelToken', { tokenId: input.tokenId, reasonText: input.reason }, input);
    },
  };
}

export type FpsActivities = ReturnType<typeof createFpsActivities>;
