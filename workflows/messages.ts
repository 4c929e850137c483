// The instrument workflow's public contract: its input, signals, Updates and query, defined once
// and imported by both the workflow and its clients (API, tests, benchmarks) so they cannot drift.
// Amounts are integer minor units; decimal strings exist only at the HTTP and FPS wires.
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MinorUnits } from '../fps/money';
import type { TransactionStatus } from '../fps/actions';

export type InstrumentType = 'prepaid' | 'postpaid' | 'single-use';
export const INSTRUMENT_TYPES: readonly InstrumentType[] = ['prepaid', 'postpaid', 'single-use'];

/** Workflow ids are derived from instrument ids, so a second start for the same instrument is refused. */
export const workflowIdFor = (instrumentId: string) => `instrument-${instrumentId}`;
export const instrumentIdFromWorkflowId = (workflowId: string) => workflowId.replace(/^instrument-/, '');
export const INSTRUMENT_WORKFLOW_TYPE = 'instrumentWorkflow';

/** Timings and limits a merchant (or a test) may tune per instrument; all optional. */
export interface InstrumentSettings {
  /** Postpaid: settle the debt every cycle (ms). Default 30 days. */
  settlementCycleMs?: number;
  /** Postpaid: settle when debt reaches this percentage of the credit limit. Default 80. */
  settlementThresholdPercent?: number;
  /** Postpaid: failed settlement retries before the account becomes delinquent. Default 3. */
  settlementRetryLimit?: number;
  /** Postpaid: wait between settlement retries (ms). Default 1 day. */
  settlementRetryIntervalMs?: number;
  /** Postpaid: delinquent debt is written off after this grace period (ms). Default 60 days. */
  writeOffGraceMs?: number;
  /** Instrument expiry (epoch ms); the instrument closes then. Default: none. */
  expiresAt?: number;
  /** Pending transactions: first GetTransactionStatus poll after (ms), doubling to maxPollIntervalMs. */
  pollInitialMs?: number;
  maxPollIntervalMs?: number;
  /** Continue-as-new after this many history events (also on continueAsNewSuggested). Default 5,000. */
  continueAsNewAfterEvents?: number;
  /**
   * Remembered operation ids with their results (duplicate detection across continue-as-new; refunds
   * look purchases up here). Default 3,000: they travel in the continue-as-new input, ~130 bytes each.
   */
  processedIdLimit?: number;
  /**
   * After a final state (closed, refunded, voided, declined) the workflow stays open this long (ms)
   * to answer queries and duplicate requests and to refuse new operations with InvalidState, then
   * completes. Default 7 days.
   */
  closedRetentionMs?: number;
  /** Attempts of one FPS call (retryable errors, timeouts) before its outcome counts as unknown. Default 5. */
  fpsCallAttempts?: number;
  /** First retry of an FPS call after (ms), doubling up to 2 s. Default 200. */
  fpsRetryInitialMs?: number;
}

/**
 * Prepaid balance rules, minor units. In a change (PATCH), null removes a rule and an absent field
 * keeps it. `lowBalanceThreshold`: one balance.low per crossing below it. `autoTopUp`: one
 * FundPrepaid of `amount` (cut to the room under the SetupPrepaid funding limit) per crossing below `below`.
 */
export interface BalanceRulesChange {
  lowBalanceThreshold?: MinorUnits | null;
  autoTopUp?: { below: MinorUnits; amount: MinorUnits } | null;
}

export interface InstrumentInput {
  instrumentId: string;
  customerId: string;
  type: InstrumentType;
  currency: string;
  /** prepaid: the amount the buyer authorizes to fund at set-up (FundPrepaid runs after authorization). */
  fundingAmount?: MinorUnits;
  /** postpaid */
  creditLimit?: MinorUnits;
  globalAmountLimit?: MinorUnits;
  /** single-use: the authorized purchase amount. */
  amount?: MinorUnits;
  /** single-use: the first purchase is paid at once ('pay', default) or reserved for a later capture ('reserve'). */
  singleUseMode?: 'pay' | 'reserve';
  description?: string;
  settings?: InstrumentSettings;
  /** prepaid: balance rules from creation (PATCH /instruments/{id} changes them later). */
  balanceRules?: BalanceRulesChange;
}

/** The verified CBUI return, as parsed by fps/cbui parseCbuiReturn. */
export type AuthorizationReturn =
  | {
      outcome: 'authorized';
      status: 'SA' | 'SB' | 'SC';
      callerReference: string;
      expiry?: string;
      tokens:
        | { tokenId: string }
        | { prepaidInstrumentId: string; fundingTokenId: string; prepaidSenderTokenId: string }
        | { creditInstrumentId: string; creditSenderTokenId: string; settlementTokenId: string };
    }
  | { outcome: 'aborted'; status: 'A'; callerReference: string }
  | { outcome: 'failed'; status: string; callerReference: string; errorMessage: string };

/** A verified IPN, as parsed by fps/ipn parseIpn. */
export interface TransactionStatusNotification {
  notificationType: 'TransactionStatus' | 'TokenCancellation';
  transactionId: string;
  transactionStatus: TransactionStatus;
  callerReference: string;
  statusCode?: string;
  statusMessage?: string;
  operation?: string;
  tokenId?: string;
}

export interface PurchaseRequest {
  purchaseId: string;
  amount: MinorUnits;
  currency: string;
  description?: string;
}

export interface DeclineReason {
  /** The FPS error code or status code, e.g. InsufficientBalance, TransactionDenied. */
  code: string;
  message: string;
}

export type OperationOutcome = 'approved' | 'declined' | 'pending';

export interface OperationResult {
  /** The business id of the operation (purchase id, funding id, ...). */
  id: string;
  operation: 'purchase' | 'fund' | 'settle' | 'writeOff' | 'refund' | 'capture' | 'void' | 'close';
  outcome: OperationOutcome;
  amount: MinorUnits;
  currency: string;
  callerReference?: string;
  transactionId?: string;
  transactionStatus?: TransactionStatus;
  reason?: DeclineReason;
  /** The instrument's state after the operation. */
  state: string;
}
export type PurchaseResult = OperationResult & { operation: 'purchase' };

export interface FundRequest {
  fundingId: string;
  amount: MinorUnits;
  currency: string;
}
export interface SettleRequest {
  settlementId: string;
  /** default: the whole debt */ amount?: MinorUnits;
}
export interface WriteOffRequest {
  writeOffId: string;
  /** default: the whole debt */ amount?: MinorUnits;
}
export interface RefundRequest {
  refundId: string;
  /** the purchase to refund */ purchaseId: string;
  /** default: all refundable */ amount?: MinorUnits;
}
export interface CaptureRequest {
  captureId: string;
  /** default: the whole reserved amount */ amount?: MinorUnits;
}
export interface VoidRequest {
  voidId: string;
}
export interface CloseRequest {
  reason?: string;
}

export interface TransactionRecord {
  id: string;
  operation: OperationResult['operation'];
  amount: MinorUnits;
  currency: string;
  callerReference: string;
  transactionId?: string;
  status: TransactionStatus | 'Declined' | 'Unknown';
  reason?: DeclineReason;
  /** epoch ms (workflow time) */
  at: number;
  refunded?: MinorUnits;
}

export interface InstrumentSnapshot {
  instrumentId: string;
  customerId: string;
  type: InstrumentType;
  /** The machine's state value, e.g. 'active', 'awaitingAuthorization'. */
  state: string;
  currency: string;
  /** prepaid: available balance */
  balance?: MinorUnits;
  /** postpaid: outstanding debt */
  debt?: MinorUnits;
  creditLimit?: MinorUnits;
  globalAmountLimit?: MinorUnits;
  /** postpaid: total charged so far (against globalAmountLimit) */
  totalCharged?: MinorUnits;
  /** single-use: authorized amount, reserved/captured/refunded amounts */
  amount?: MinorUnits;
  /** Operations waiting for an FPS outcome (Pending). */
  pending: TransactionRecord[];
  /** Most recent transactions, newest last (bounded). */
  transactions: TransactionRecord[];
  purchasesApproved: number;
  continueAsNewCount: number;
  /** Why a finished instrument ended (final states only). */
  closeReason?: string;
  /** postpaid: failed settlements in a row */
  settlementFailures?: number;
  /** postpaid: when the next scheduled settlement runs (epoch ms, workflow time) */
  nextSettlementAt?: number;
  /** single-use: reserved, charged (paid or captured) and refunded amounts */
  reserved?: MinorUnits;
  charged?: MinorUnits;
  refunded?: MinorUnits;
  /** The instrument reached a final state: Updates are refused with InvalidState (duplicates still answer). */
  final: boolean;
  /** prepaid: the balance rules in force, and how often the balance crossed below each threshold. */
  balanceRules?: {
    lowBalanceThreshold?: MinorUnits;
    autoTopUp?: { below: MinorUnits; amount: MinorUnits };
    lowBalanceCrossings: number;
    autoTopUpCrossings: number;
  };
}

export const authorizationReturnedSignal = defineSignal<[AuthorizationReturn]>('authorizationReturned');
export const transactionStatusChangedSignal = defineSignal<[TransactionStatusNotification]>('transactionStatusChanged');

export const purchaseUpdate = defineUpdate<PurchaseResult, [PurchaseRequest]>('purchase');
export const fundUpdate = defineUpdate<OperationResult, [FundRequest]>('fund');
export const settleUpdate = defineUpdate<OperationResult, [SettleRequest]>('settle');
export const writeOffUpdate = defineUpdate<OperationResult, [WriteOffRequest]>('writeOff');
export const refundUpdate = defineUpdate<OperationResult, [RefundRequest]>('refund');
export const captureUpdate = defineUpdate<OperationResult, [CaptureRequest]>('capture');
export const voidUpdate = defineUpdate<OperationResult, [VoidRequest]>('void');
export const closeUpdate = defineUpdate<OperationResult, [CloseRequest]>('close');
/** Prepaid: changes the balance rules; answers the instrument's snapshot. */
export const setBalanceRulesUpdate = defineUpdate<InstrumentSnapshot, [BalanceRulesChange]>('setBalanceRules');

export const snapshotQuery = defineQuery<InstrumentSnapshot>('snapshot');

/** Which operation to look up: its kind and business id (purchase id, funding id, ...). */
export interface OperationLookup {
  operation: OperationResult['operation'];
  id: string;
}
/**
 * The current result of one operation, by id: how a client follows a purchase that was Pending,
 * or reads one that rolled out of the snapshot's recent transactions. Null when the instrument
 * never saw it (or forgot it: the processed-id map is bounded by settings.processedIdLimit).
 */
export const operationResultQuery = defineQuery<OperationResult | null, [OperationLookup]>('operationResult');

/**
 * Types of the ApplicationFailures an Update validator or handler rejects with; the API maps them
 * to HTTP statuses (InvalidState → 409, InvalidAmount/InvalidCurrency → 422, LimitExceeded → 422).
 */
export const UpdateRejection = {
  InvalidState: 'InvalidState',
  InvalidAmount: 'InvalidAmount',
  InvalidCurrency: 'InvalidCurrency',
  LimitExceeded: 'LimitExceeded',
  UnknownPurchase: 'UnknownPurchase',
  DuplicateId: 'DuplicateId',
  /** A malformed request (missing or over-long id, wrong shape): 400/422. */
  InvalidRequest: 'InvalidRequest',
} as const;
export type UpdateRejectionType = (typeof UpdateRejection)[keyof typeof UpdateRejection];

/** Search attributes the workflow keeps current; registered on the dev server at start-up. */
export const SEARCH_ATTRIBUTES = {
  CustomerId: 'CustomerId',
  InstrumentType: 'InstrumentType',
  InstrumentState: 'InstrumentState',
} as const;

export const CustomerIdKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.CustomerId, SearchAttributeType.KEYWORD);
export const InstrumentTypeKey = defineSearchAttributeKey(
  SEARCH_ATTRIBUTES.InstrumentType,
  SearchAttributeType.KEYWORD,
);
export const InstrumentStateKey = defineSearchAttributeKey(
  SEARCH_ATTRIBUTES.InstrumentState,
  SearchAttributeType.KEYWORD,
);

/** The machines' initial state: what InstrumentState holds when a workflow starts. */
export const INITIAL_INSTRUMENT_STATE = 'awaitingAuthorization';

/** `typedSearchAttributes` for starting an instrument workflow (the workflow keeps InstrumentState current). */
export function instrumentSearchAttributes(input: Pick<InstrumentInput, 'customerId' | 'type'>): SearchAttributePair[] {
  return [
    { key: CustomerIdKey, value: input.customerId },
    { key: InstrumentTypeKey, value: input.type },
    { key: InstrumentStateKey, value: INITIAL_INSTRUMENT_STATE },
  ];
}

/** `staticSummary` for starting an instrument workflow: what an operator sees first in the Web UI. */
export function instrumentStaticSummary(input: InstrumentInput): string {
  const limits =
    input.type === 'prepaid'
      ? `funding ${input.fundingAmount ?? '?'}`
      : input.type === 'postpaid'
        ? `credit limit ${input.creditLimit ?? '?'}${input.globalAmountLimit ? `, global limit ${input.globalAmountLimit}` : ''}`
        : `amount ${input.amount ?? '?'} (${input.singleUseMode ?? 'pay'})`;
  return `${input.type} instrument ${input.instrumentId} for customer ${input.customerId}: ${limits} ${input.currency} minor units`;
}
