// The contract between the instrument workflow and the record (the ledger store) and its event
// outbox. The workflow stays the source of truth for state and decisions; these types say what it
// passes to the activities so they can keep the durable record, and what the record tells it back.
// The workflow decides: an operation it no longer remembers (beyond its in-run window of ids) is
// looked up in the record before anything is sent, and a recorded one is answered from the record.
// The lookup is `findRecordedOperation`, or for a postpaid purchase the pay call itself when the
// workflow asks it to (`answerFromRecord`): then the activity reads the row first and returns it
// instead of calling FPS. Otherwise the money activities only record.
import type { TransactionStatus } from '../fps/actions';

/** Every money operation the record keeps, named as the API names them. */
export type RecordedOperationKind =
  'purchase' | 'refund' | 'fund' | 'settle' | 'writeOff' | 'reserve' | 'capture' | 'void';

/**
 * Passed by the workflow on every money activity input as `record`, beside the CallerReference,
 * so the activity can upsert the operation's row (keyed by CallerReference) in the same attempt as
 * its FPS call. Amounts are integer minor units; currency is the ISO code.
 */
export interface RecordContext {
  instrumentId: string;
  customerId: string;
  instrumentType: 'prepaid' | 'postpaid' | 'single-use';
  operation: RecordedOperationKind;
  /** The caller's id (purchase id, refund id, Idempotency-Key) or the workflow's own (`wf:`-prefixed). */
  operationId: string;
  amount: number;
  currency: string;
  /** For refunds, captures and voids: the operation id of the purchase/reservation they act on. */
  parentOperationId?: string;
  description?: string;
  /** The row's key: the CallerReference sent, or for Settle/Cancel (which send none) the workflow's own. */
  callerReference: string;
  /**
   * The workflow no longer remembers every id (its window is full) and asks the call to look first:
   * a row of this operation that is counted, or that has another amount, is returned as the
   * activity's `recorded` answer and nothing is sent to FPS. A row not yet counted with the same
   * amount is run again (the same CallerReference: FPS answers the same transaction).
   */
  answerFromRecord?: boolean;
}

/** One operation as the record holds it. */
export interface RecordedOperation {
  callerReference: string;
  instrumentId: string;
  customerId: string;
  operation: RecordedOperationKind;
  operationId: string;
  amount: number;
  currency: string;
  /** Declined: FPS refused the call (a non-retryable error), nothing moved. */
  status: TransactionStatus | 'Declined';
  transactionId?: string;
  /** Purchases and captures: how much has been refunded against it so far (minor units). */
  refundedAmount: number;
  declineCode?: string;
  declineReason?: string;
  parentOperationId?: string;
  description?: string;
  createdAt: number;
  updatedAt: number;
  /**
   * Whether the workflow has acknowledged counting it. A row written by an activity whose workflow
   * task was then lost is not counted: the workflow never applied it, so it runs the operation again
   * with the same CallerReference (FPS answers the same transaction) instead of answering from it.
   */
  counted: boolean;
}

/** One operation the workflow acknowledges counting. */
export interface CountedOperation {
  operation: RecordedOperationKind;
  operationId: string;
}

/** Lifecycle events the workflow decides (money events are written by the money activities). */
export type InstrumentEventType =
  | 'instrument.authorized'
  | 'instrument.activated'
  | 'instrument.closed'
  | 'instrument.expired'
  | 'instrument.delinquent'
  | 'balance.low'
  | 'settlement.succeeded'
  | 'settlement.failed'
  | 'debt.written_off';

export interface InstrumentEventInput {
  type: InstrumentEventType;
  instrumentId: string;
  customerId: string;
  /** Unique per instrument for this fact (e.g. `activated`, `balance.low:<crossing n>`): emitting twice is harmless. */
  eventKey: string;
  /** The instrument snapshot or the operation result, as the API renders it (decimal strings). */
  data: Record<string, unknown>;
}

/** Activities the record adds, all idempotent. */
export interface RecordActivities {
  /** The record's row for an operation of this instrument, or null (used when the workflow's in-run window misses). */
  findRecordedOperation(input: {
    instrumentId: string;
    operation: RecordedOperationKind;
    operationId: string;
  }): Promise<RecordedOperation | null>;
  /** Appends a lifecycle event to the outbox, once per (instrumentId, eventKey). */
  emitInstrumentEvent(input: InstrumentEventInput): Promise<void>;
  /**
   * Marks rows the workflow's durable state counts. A scheduled activity, never a local one: its
   * command is committed with the workflow task that counted the operations, so it cannot run for
   * a task that was lost. Idempotent.
   */
  acknowledgeCounted(input: { instrumentId: string; operations: CountedOperation[] }): Promise<number>;
}
