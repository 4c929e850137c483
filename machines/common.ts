// What the three instrument machines share: the events the workflow sends them, the money
// operations they track while FPS has not given a final answer, and small pure helpers.
// Amounts are integer minor units. No I/O, no timers: the workflow drives time and FPS.

/** A money operation the machine is waiting on (in flight, Pending at FPS, or of unknown outcome). */
export type OperationKind = 'purchase' | 'fund' | 'settle' | 'writeOff' | 'refund' | 'capture' | 'void';

export interface PendingOperation {
  /** Unique key of the operation on this instrument, see operationRef(). */
  ref: string;
  operation: OperationKind;
  amount: number;
}

/** `<operation>:<business id>`: what events use to name an operation. */
export const operationRef = (operation: OperationKind, id: string) => `${operation}:${id}`;

export interface BaseContext {
  currency: string;
  /** Operations without a final FPS outcome yet, oldest first. */
  pending: PendingOperation[];
  /** Why a closed/declined instrument ended, for operators. */
  closeReason?: string;
}

/** Every event any instrument machine understands; a machine ignores the ones it does not handle. */
export type InstrumentEvent =
  /** The buyer completed the CBUI pipeline. Prepaid: `ref`/`amount` name the initial FundPrepaid. */
  | { type: 'AUTHORIZED'; ref?: string; amount?: number }
  | { type: 'AUTHORIZATION_ABORTED' }
  | { type: 'AUTHORIZATION_FAILED'; reason: string }
  | { type: 'PURCHASE'; ref: string; amount: number }
  | { type: 'FUND'; ref: string; amount: number }
  | { type: 'SETTLE'; ref: string; amount: number }
  | { type: 'WRITE_OFF'; ref: string; amount: number }
  /** `refundable`: what is still refundable on the purchase being refunded (prepaid/postpaid). */
  | { type: 'REFUND'; ref: string; amount: number; refundable?: number }
  | { type: 'CAPTURE'; ref: string; amount: number }
  | { type: 'VOID'; ref: string }
  | { type: 'CLOSE'; reason?: string }
  | { type: 'EXPIRE' }
  /**
   * Prepaid: replaces the balance rules it names (null removes one, an absent field keeps it). Not a
   * crossing by itself: a balance already below a new threshold crosses only after it rises again.
   */
  | { type: 'SET_BALANCE_RULES'; lowBalanceThreshold?: number | null; autoTopUp?: AutoTopUpRule | null }
  /**
   * Prepaid: the workflow starts the top-up for auto top-up crossing `crossing` (and any earlier
   * one not yet handled). `ref` names the FundPrepaid; the machine decides its amount (or none).
   */
  | { type: 'AUTO_TOP_UP'; ref: string; crossing: number }
  /** FPS outcomes of a pending operation. Unknown refs are ignored: a terminal outcome is never overwritten. */
  | { type: 'TRANSACTION_SUCCEEDED'; ref: string }
  | { type: 'TRANSACTION_PENDING'; ref: string }
  | { type: 'TRANSACTION_FAILED'; ref: string; reason?: string }
  /**
   * Postpaid: the purchase `ref` was applied, then its pay call found it already counted in the
   * record (a retry of a purchase older than the workflow's window of ids): it never happened in
   * this run, so it is taken back as if it had not been applied. Nothing was sent to FPS.
   */
  | { type: 'PURCHASE_WITHDRAWN'; ref: string };

export type InstrumentEventType = InstrumentEvent['type'];

/** Prepaid auto top-up: once the balance falls below `below`, fund `amount` (within the funding limit). */
export interface AutoTopUpRule {
  below: number;
  amount: number;
}
export type EventOf<T extends InstrumentEventType> = Extract<InstrumentEvent, { type: T }>;

export const isPositiveAmount = (amount: unknown): amount is number =>
  typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0;

/** The operation an event names, if any. */
export const eventRef = (event: InstrumentEvent): string | undefined =>
  'ref' in event && typeof event.ref === 'string' ? event.ref : undefined;

export const findPending = (context: BaseContext, ref: string | undefined): PendingOperation | undefined =>
  ref === undefined ? undefined : context.pending.find((op) => op.ref === ref);

export const hasPending = (context: BaseContext, ref: string | undefined, ...kinds: OperationKind[]): boolean => {
  const op = findPending(context, ref);
  return op !== undefined && (kinds.length === 0 || kinds.includes(op.operation));
};

export const pendingOf = (context: BaseContext, kind: OperationKind): PendingOperation[] =>
  context.pending.filter((op) => op.operation === kind);

export const sumOf = (ops: readonly PendingOperation[]): number => ops.reduce((sum, op) => sum + op.amount, 0);

export const withPending = (context: BaseContext, op: PendingOperation): PendingOperation[] => [...context.pending, op];

export const withoutPending = (context: BaseContext, ref: string | undefined): PendingOperation[] =>
  context.pending.filter((op) => op.ref !== ref);

/** The ref carried by an outcome event, or undefined for other events. */
export const outcomeRef = (event: InstrumentEvent): string | undefined =>
  event.type === 'TRANSACTION_SUCCEEDED' || event.type === 'TRANSACTION_PENDING' || event.type === 'TRANSACTION_FAILED'
    ? event.ref
    : undefined;

/** Why an instrument closed, for the lifecycle events every machine shares; undefined for any other event. */
export function closeReasonFor(event: InstrumentEvent): string | undefined {
  switch (event.type) {
    case 'AUTHORIZATION_ABORTED':
      return 'authorization aborted by the buyer';
    case 'AUTHORIZATION_FAILED':
      return `authorization failed: ${event.reason}`;
    case 'CLOSE':
      return event.reason ?? 'closed on request';
    case 'EXPIRE':
      return 'expired';
    default:
      return undefined;
  }
}
