// The record's side of activities/record-contract.ts: money activities wrapped so each attempt
// upserts its FPS answer (or refusal) with its event in one transaction, keyed by CallerReference;
// plus the record's own activities. Whether an operation is a replay is the workflow's decision
// (it looks the record up first, or asks the call to: `answerFromRecord`); here a retried attempt
// only re-sends and re-upserts the same row.
// Without a `record` context on the input (older callers) an activity runs unrecorded.
import { ApplicationFailure } from '@temporalio/activity';
import type { TransactionStatus } from '../fps/actions';
import { eventsFor } from '../store/operation-events';
import type { LedgerStore } from '../store/ledger';
import type { OperationRow } from '../store/schema';
import type { FpsFailureDetails } from './failures';
import type { FpsActivities, MoneyResult, StatusResult, TransactionStatusInput } from './fps-activities';
import type { RecordActivities, RecordContext, RecordedOperation, RecordedOperationKind } from './record-contract';

type Recorded = { record?: RecordContext };
type MoneyActivity = 'pay' | 'reserve' | 'settle' | 'refund' | 'cancel' | 'fundPrepaid' | 'settleDebt' | 'writeOffDebt';
const MONEY_ACTIVITIES: readonly MoneyActivity[] = [
  'pay',
  'reserve',
  'settle',
  'refund',
  'cancel',
  'fundPrepaid',
  'settleDebt',
  'writeOffDebt',
];

export function toRecordedOperation(row: OperationRow): RecordedOperation {
  return {
    callerReference: row.caller_reference,
    instrumentId: row.instrument_id,
    customerId: row.customer_id,
    operation: row.operation as RecordedOperationKind,
    operationId: row.operation_id,
    amount: row.amount,
    currency: row.currency,
    status: row.status as RecordedOperation['status'],
    transactionId: row.transaction_id ?? undefined,
    refundedAmount: row.refunded_amount,
    declineCode: row.decline_code ?? undefined,
    declineReason: row.decline_reason ?? undefined,
    parentOperationId: row.parent_operation_id ?? undefined,
    description: row.description ?? undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    counted: row.counted_at !== null,
  };
}

function rowOf(ctx: RecordContext, status: string, transactionId?: string, decline?: FpsFailureDetails) {
  return {
    caller_reference: ctx.callerReference,
    instrument_id: ctx.instrumentId,
    customer_id: ctx.customerId,
    instrument_type: ctx.instrumentType,
    operation: ctx.operation,
    operation_id: ctx.operationId,
    amount: ctx.amount,
    currency: ctx.currency,
    status,
    transaction_id: transactionId ?? null,
    decline_code: decline?.code ?? null,
    decline_reason: decline?.message ?? null,
    parent_operation_id: ctx.parentOperationId ?? null,
    description: ctx.description ?? null,
    opened_by: null,
  };
}

/** The money activities, each recorded in the same attempt as its FPS call. */
export function withRecord(activities: FpsActivities, store: LedgerStore): FpsActivities {
  const wrapped = { ...activities };
  for (const name of MONEY_ACTIVITIES) {
    const inner = activities[name] as (input: Recorded) => Promise<MoneyResult>;
    (wrapped as Record<MoneyActivity, unknown>)[name] = async (input: Recorded): Promise<MoneyResult> => {
      const ctx = input.record;
      if (!ctx) return inner(input);
      if (ctx.answerFromRecord) {
        const found = await store.operation(ctx.instrumentId, ctx.operation, ctx.operationId);
        if (found && (found.counted_at !== null || found.amount !== ctx.amount)) {
          const recorded = toRecordedOperation(found);
          const status = recorded.status === 'Declined' ? 'Failure' : recorded.status;
          return { transactionId: recorded.transactionId ?? '', transactionStatus: status, recorded };
        }
      }
      let result: MoneyResult;
      try {
        result = await inner(input);
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) {
          const details = err.details?.[0] as FpsFailureDetails | undefined;
          const row = rowOf(ctx, 'Declined', undefined, details);
          await store.recordOperation(row, eventsFor({ ...row, refunded_amount: 0, created_at: 0, updated_at: 0 }));
        }
        throw err;
      }
      const row = rowOf(ctx, result.transactionStatus, result.transactionId);
      await store.recordOperation(row, eventsFor({ ...row, refunded_amount: 0, created_at: 0, updated_at: 0 }));
      return result;
    };
  }
  // A poll that finds a recorded operation's final status resolves its row too.
  wrapped.getTransactionStatus = async (input: TransactionStatusInput): Promise<StatusResult> => {
    const status = await activities.getTransactionStatus(input);
    if (input.callerReference && status.transactionStatus !== 'Pending') {
      await store.resolveOperation(input.callerReference, status.transactionStatus, eventsFor);
    }
    return status;
  };
  return wrapped;
}

export function createRecordActivities(store: LedgerStore): RecordActivities & {
  resolveRecordedOperation(input: { callerReference: string; status: TransactionStatus | 'Declined' }): Promise<void>;
} {
  return {
    async findRecordedOperation({ instrumentId, operation, operationId }) {
      const row = await store.operation(instrumentId, operation, operationId);
      return row ? toRecordedOperation(row) : null;
    },
    async emitInstrumentEvent(input) {
      await store.appendEvent(input);
    },
    async acknowledgeCounted({ instrumentId, operations }) {
      return store.markCounted(instrumentId, operations);
    },
    /** An IPN's outcome for a recorded operation (the workflow calls it when a signal resolves one). */
    async resolveRecordedOperation({ callerReference, status }) {
      await store.resolveOperation(callerReference, status, eventsFor);
    },
  };
}

/** Without a ledger store (tools, some tests): nothing is recorded, so nothing is ever found. */
export const unrecordedActivities: RecordActivities = {
  findRecordedOperation: async () => null,
  emitInstrumentEvent: async () => undefined,
  acknowledgeCounted: async () => 0,
};
