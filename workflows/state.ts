// The instrument workflow's own state, as plain JSON: what one run hands the next through
// continue-as-new. Bounded in size whatever the account's age.
import type { TransactionStatus } from '../fps/actions';
import type { PersistedMachineState } from '../machines';
import type { DeclineReason, InstrumentInput, OperationOutcome, OperationResult, TransactionRecord } from './messages';

/** The ids FPS returned from the CBUI pipeline; references only, usable with the merchant's credentials alone. */
export type InstrumentTokens =
  | { kind: 'prepaid'; prepaidInstrumentId: string; fundingTokenId: string; prepaidSenderTokenId: string }
  | { kind: 'postpaid'; creditInstrumentId: string; creditSenderTokenId: string; settlementTokenId: string }
  | { kind: 'single-use'; tokenId: string };

export type OperationName = OperationResult['operation'];

/** A money operation FPS has not given a final answer on. */
export interface OpenOperation {
  /** Machine ref, `<operation>:<id>`. */
  ref: string;
  id: string;
  operation: Exclude<OperationName, 'close'>;
  amount: number;
  /** What the FPS call sends (Settle and Cancel send none; theirs is descriptive). */
  callerReference: string;
  /** The FPS transaction the operation created or acts on, once known. */
  transactionId?: string;
  /** Pending: FPS said so; Unknown: no answer yet (retries exhausted), the call is re-sent with the same CallerReference. */
  status: 'InFlight' | 'Pending' | 'Unknown';
  /** Refunds: the purchase they refund. */
  purchaseRef?: string;
  /** Purchases: Pay or Reserve. */
  action?: 'Pay' | 'Reserve';
  /** Purchases: the SenderDescription sent (a re-send must repeat it exactly). */
  description?: string;
  /** Refund, capture, void: the FPS transaction they act on. */
  targetTransactionId?: string;
  record: TransactionRecord;
  /**
   * Postpaid purchases beyond the window: the pay call looks the record up first (answerFromRecord)
   * until one attempt has got past that lookup (answered, or refused by FPS).
   */
  askRecord?: true;
}

/**
 * A finished (or pending) operation's answer, remembered by ref for duplicate requests and refunds.
 * Short keys and nothing derivable: up to processedIdLimit of these (~130 bytes each) cross every
 * continue-as-new, and the carried state should stay under Temporal's 512 KB payload warning.
 */
export interface ProcessedEntry {
  /** ref */
  r: string;
  /** outcome */
  o: OperationOutcome;
  /** amount */
  a: number;
  /** FPS transaction id */
  t?: string;
  /** transaction status */
  s?: TransactionStatus | 'Declined' | 'Unknown';
  /** decline reason */
  c?: DeclineReason;
  /** amount refunded so far (purchases) */
  f?: number;
  /** instrument state after the operation */
  st: string;
  /**
   * Set while the record's row is not yet acknowledged as counted (the workflow answered it, the
   * record does not know that yet): such an entry is never forgotten before its acknowledgement.
   */
  u?: 1;
}

export interface Counters {
  purchasesApproved: number;
  continueAsNewCount: number;
  /** Settlements the workflow started itself (cycle, threshold, retry, expiry): names their CallerReferences. */
  autoSettlements: number;
  autoWriteOffs: number;
  /** Postpaid: times the account became delinquent (names its instrument.delinquent events). */
  delinquencies?: number;
  /**
   * Answers dropped from the window of processed ids (settings.processedIdLimit). Once any were, an
   * id the workflow does not know may still be a recorded operation: it asks the record first.
   */
  forgotten?: number;
}

export interface Timers {
  /** Postpaid: next settlement cycle (epoch ms, workflow time). */
  nextSettlementAt?: number;
  settlementCycle: number;
  /** Postpaid: retry of a failed settlement. */
  settlementRetryAt?: number;
  /** Postpaid: automatic write-off of a delinquent account. */
  writeOffAt?: number;
  /** Postpaid: settle as soon as the lock is free (threshold reached, or expiry with debt). */
  settleSoon: boolean;
  expiryHandled: boolean;
  /** When the machine reached a final state. */
  finalAt?: number;
  tokensCancelled: boolean;
}

export interface ContinuedState {
  continued: true;
  input: InstrumentInput;
  machine: PersistedMachineState;
  tokens?: InstrumentTokens;
  open: OpenOperation[];
  transactions: TransactionRecord[];
  processed: ProcessedEntry[];
  counters: Counters;
  timers: Timers;
  /** Single use: the ref of its one purchase. */
  purchaseRef?: string;
}

export const isContinuedState = (arg: unknown): arg is ContinuedState =>
  typeof arg === 'object' && arg !== null && (arg as { continued?: unknown }).continued === true;
