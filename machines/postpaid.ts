// Postpaid (credit) instrument: purchases accrue debt up to the credit limit (and the token's
// global amount limit); SettleDebt collects it; failed settlements are retried until the account
// is delinquent; uncollectable debt is written off and the account closed. A purchase found already
// counted in the record (a retry older than the workflow's window) is withdrawn as if never applied.
import { assign, setup } from 'xstate';
import {
  eventRef,
  findPending,
  hasPending,
  isPositiveAmount,
  pendingOf,
  sumOf,
  withoutPending,
  withPending,
  type BaseContext,
  type InstrumentEvent,
  type PendingOperation,
  closeReasonFor,
} from './common';

export interface PostpaidInput {
  currency: string;
  creditLimit: number;
  /** Total the credit sender token may ever charge; defaults to unlimited. */
  globalAmountLimit?: number;
  /** Failed settlements tolerated before the account is delinquent. */
  settlementRetryLimit?: number;
}

export interface PostpaidContext extends BaseContext {
  creditLimit: number;
  globalAmountLimit: number | null;
  /** Confirmed debt (purchases FPS charged, minus settlements, write-offs and refunds). */
  debt: number;
  /** Charged by purchases FPS has not confirmed yet; counts against the credit limit. */
  held: number;
  /** Everything ever charged or held, against globalAmountLimit. */
  totalCharged: number;
  settled: number;
  writtenOff: number;
  refunded: number;
  /** Failed settlements in a row; reset by a successful one. */
  settlementFailures: number;
  settlementRetryLimit: number;
  expired: boolean;
  /** Where a failed write-off returns to. */
  resumeState: 'active' | 'delinquent';
}

const pendingSettlementOrWriteOff = (context: PostpaidContext) =>
  context.pending.some((op) => op.operation === 'settle' || op.operation === 'writeOff');

/** Debt once the operation's success is applied. */
/**
 * The debt after one successful operation: a purchase adds to it; a settlement, write-off or refund
 * takes from it, never below zero (a refund of a purchase already settled is money back to the
 * customer, not a credit). The record's statements fold their rows with this same rule.
 */
export function debtAfter(debt: number, operation: string, amount: number): number {
  switch (operation) {
    case 'purchase':
      return debt + amount;
    case 'settle':
    case 'writeOff':
    case 'refund':
      return Math.max(0, debt - amount);
    default:
      return debt;
  }
}

function debtAfterSuccess(context: PostpaidContext, ref: string | undefined): number {
  const op = findPending(context, ref);
  return op ? debtAfter(context.debt, op.operation, op.amount) : context.debt;
}

/** The context without an open purchase: nothing charged, nothing held (it failed, or was withdrawn). */
function withoutPurchase(context: PostpaidContext, op: PendingOperation): Partial<PostpaidContext> {
  return {
    pending: withoutPending(context, op.ref),
    held: context.held - op.amount,
    totalCharged: context.totalCharged - op.amount,
  };
}

export const postpaidMachine = setup({
  types: {
    context: {} as PostpaidContext,
    events: {} as InstrumentEvent,
    input: {} as PostpaidInput,
  },
  guards: {
    withinCreditLimit: ({ context, event }) =>
      event.type === 'PURCHASE' &&
      isPositiveAmount(event.amount) &&
      !context.expired &&
      !findPending(context, event.ref) &&
      context.debt + context.held + event.amount <= context.creditLimit &&
      (context.globalAmountLimit === null || context.totalCharged + event.amount <= context.globalAmountLimit),
    /** Settle at most the confirmed debt, one settlement at a time. */
    settlementWithinDebt: ({ context, event }) =>
      event.type === 'SETTLE' &&
      isPositiveAmount(event.amount) &&
      event.amount <= context.debt &&
      !pendingSettlementOrWriteOff(context) &&
      !findPending(context, event.ref),
    /** A write-off covers the whole debt, with no purchase or settlement still open. */
    writeOffCoversDebt: ({ context, event }) =>
      event.type === 'WRITE_OFF' &&
      isPositiveAmount(event.amount) &&
      event.amount === context.debt &&
      context.pending.length === 0,
    refundWithinRefundable: ({ context, event }) =>
      event.type === 'REFUND' &&
      isPositiveAmount(event.amount) &&
      event.amount <= (event.refundable ?? 0) &&
      !findPending(context, event.ref),
    isPendingOperation: ({ context, event }) => hasPending(context, eventRef(event)),
    isPendingPurchase: ({ context, event }) => hasPending(context, eventRef(event), 'purchase'),
    isPendingSettlement: ({ context, event }) => hasPending(context, eventRef(event), 'settle'),
    isPendingWriteOff: ({ context, event }) => hasPending(context, eventRef(event), 'writeOff'),
    /** An expired account closes once its last settlement clears the debt. */
    settlementClosesExpired: ({ context, event }) =>
      hasPending(context, eventRef(event), 'settle') &&
      context.expired &&
      debtAfterSuccess(context, eventRef(event)) === 0 &&
      context.pending.length === 1,
    settlementRetriesExhausted: ({ context, event }) =>
      hasPending(context, eventRef(event), 'settle') && context.settlementFailures + 1 > context.settlementRetryLimit,
    writeOffResumesDelinquent: ({ context, event }) =>
      hasPending(context, eventRef(event), 'writeOff') && context.resumeState === 'delinquent',
    nothingOwedOrPending: ({ context }) => context.debt === 0 && context.pending.length === 0,
  },
  actions: {
    holdPurchase: assign(({ context, event }) =>
      event.type === 'PURCHASE'
        ? {
            held: context.held + event.amount,
            totalCharged: context.totalCharged + event.amount,
            pending: withPending(context, { ref: event.ref, operation: 'purchase', amount: event.amount }),
          }
        : {},
    ),
    trackSettlement: assign(({ context, event }) =>
      event.type === 'SETTLE'
        ? { pending: withPending(context, { ref: event.ref, operation: 'settle', amount: event.amount }) }
        : {},
    ),
    trackWriteOffFromActive: assign(({ context, event }) =>
      event.type === 'WRITE_OFF'
        ? {
            resumeState: 'active' as const,
            pending: withPending(context, { ref: event.ref, operation: 'writeOff', amount: event.amount }),
          }
        : {},
    ),
    trackWriteOffFromDelinquent: assign(({ context, event }) =>
      event.type === 'WRITE_OFF'
        ? {
            resumeState: 'delinquent' as const,
            pending: withPending(context, { ref: event.ref, operation: 'writeOff', amount: event.amount }),
          }
        : {},
    ),
    trackRefund: assign(({ context, event }) =>
      event.type === 'REFUND'
        ? { pending: withPending(context, { ref: event.ref, operation: 'refund', amount: event.amount }) }
        : {},
    ),
    applySuccess: assign(({ context, event }) => {
      if (event.type !== 'TRANSACTION_SUCCEEDED') return {};
      const op = findPending(context, event.ref);
      if (!op) return {};
      const pending = withoutPending(context, op.ref);
      const debt = debtAfterSuccess(context, op.ref);
      switch (op.operation) {
        case 'purchase':
          return { pending, debt, held: context.held - op.amount };
        case 'settle':
          return { pending, debt, settled: context.settled + op.amount, settlementFailures: 0 };
        case 'writeOff':
          return { pending, debt, writtenOff: context.writtenOff + op.amount, closeReason: 'debt written off' };
        case 'refund':
          return { pending, debt, refunded: context.refunded + op.amount };
        default:
          return { pending };
      }
    }),
    applyFailure: assign(({ context, event }) => {
      if (event.type !== 'TRANSACTION_FAILED') return {};
      const op = findPending(context, event.ref);
      if (!op) return {};
      const pending = withoutPending(context, op.ref);
      switch (op.operation) {
        case 'purchase':
          return withoutPurchase(context, op);
        case 'settle':
          return { pending, settlementFailures: context.settlementFailures + 1 };
        default:
          return { pending };
      }
    }),
    /** A purchase found already counted in the record: as if it had never been applied. */
    withdrawPurchase: assign(({ context, event }) => {
      const op = event.type === 'PURCHASE_WITHDRAWN' ? findPending(context, event.ref) : undefined;
      return op?.operation === 'purchase' ? withoutPurchase(context, op) : {};
    }),
    markExpired: assign({ expired: true }),
    recordCloseReason: assign(({ event }) => {
      // Expiry closes a postpaid account once its last settlement succeeds.
      const closeReason = event.type === 'TRANSACTION_SUCCEEDED' ? 'expired; debt settled' : closeReasonFor(event);
      return closeReason === undefined ? {} : { closeReason };
    }),
  },
}).createMachine({
  id: 'postpaid',
  initial: 'awaitingAuthorization',
  context: ({ input }) => ({
    currency: input.currency,
    pending: [],
    creditLimit: input.creditLimit,
    globalAmountLimit: input.globalAmountLimit ?? null,
    debt: 0,
    held: 0,
    totalCharged: 0,
    settled: 0,
    writtenOff: 0,
    refunded: 0,
    settlementFailures: 0,
    settlementRetryLimit: input.settlementRetryLimit ?? 3,
    expired: false,
    resumeState: 'active',
  }),
  // Purchase, refund and their outcomes work the same while a settlement is open.
  states: {
    awaitingAuthorization: {
      on: {
        AUTHORIZED: { target: 'active' },
        AUTHORIZATION_ABORTED: { target: 'closed', actions: 'recordCloseReason' },
        AUTHORIZATION_FAILED: { target: 'closed', actions: 'recordCloseReason' },
        CLOSE: { target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { target: 'closed', actions: 'recordCloseReason' },
      },
    },
    active: {
      on: {
        PURCHASE: { guard: 'withinCreditLimit', actions: 'holdPurchase' },
        PURCHASE_WITHDRAWN: { guard: 'isPendingPurchase', actions: 'withdrawPurchase' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        SETTLE: { guard: 'settlementWithinDebt', target: 'settling', actions: 'trackSettlement' },
        WRITE_OFF: { guard: 'writeOffCoversDebt', target: 'writingOff', actions: 'trackWriteOffFromActive' },
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', actions: 'applySuccess' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', actions: 'applyFailure' },
        CLOSE: { guard: 'nothingOwedOrPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: [
          { guard: 'nothingOwedOrPending', target: 'closed', actions: 'recordCloseReason' },
          { actions: 'markExpired' },
        ],
      },
    },
    /** SettleDebt is in flight. */
    settling: {
      on: {
        PURCHASE: { guard: 'withinCreditLimit', actions: 'holdPurchase' },
        PURCHASE_WITHDRAWN: { guard: 'isPendingPurchase', actions: 'withdrawPurchase' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'settlementClosesExpired', target: 'closed', actions: ['applySuccess', 'recordCloseReason'] },
          { guard: 'isPendingSettlement', target: 'active', actions: 'applySuccess' },
          { guard: 'isPendingOperation', actions: 'applySuccess' },
        ],
        TRANSACTION_PENDING: { guard: 'isPendingSettlement', target: 'settlementPending' },
        TRANSACTION_FAILED: [
          { guard: 'settlementRetriesExhausted', target: 'delinquent', actions: 'applyFailure' },
          { guard: 'isPendingSettlement', target: 'active', actions: 'applyFailure' },
          { guard: 'isPendingOperation', actions: 'applyFailure' },
        ],
        EXPIRE: { actions: 'markExpired' },
      },
    },
    /** FPS answered Pending to SettleDebt: an IPN or a status poll decides. */
    settlementPending: {
      on: {
        PURCHASE: { guard: 'withinCreditLimit', actions: 'holdPurchase' },
        PURCHASE_WITHDRAWN: { guard: 'isPendingPurchase', actions: 'withdrawPurchase' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'settlementClosesExpired', target: 'closed', actions: ['applySuccess', 'recordCloseReason'] },
          { guard: 'isPendingSettlement', target: 'active', actions: 'applySuccess' },
          { guard: 'isPendingOperation', actions: 'applySuccess' },
        ],
        TRANSACTION_FAILED: [
          { guard: 'settlementRetriesExhausted', target: 'delinquent', actions: 'applyFailure' },
          { guard: 'isPendingSettlement', target: 'active', actions: 'applyFailure' },
          { guard: 'isPendingOperation', actions: 'applyFailure' },
        ],
        EXPIRE: { actions: 'markExpired' },
      },
    },
    /** Settlement failed past the retry limit: no new purchases; settle, write off, or close once nothing is owed. */
    delinquent: {
      on: {
        SETTLE: { guard: 'settlementWithinDebt', target: 'settling', actions: 'trackSettlement' },
        WRITE_OFF: { guard: 'writeOffCoversDebt', target: 'writingOff', actions: 'trackWriteOffFromDelinquent' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', actions: 'applySuccess' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', actions: 'applyFailure' },
        PURCHASE_WITHDRAWN: { guard: 'isPendingPurchase', actions: 'withdrawPurchase' },
        CLOSE: { guard: 'nothingOwedOrPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { actions: 'markExpired' },
      },
    },
    /** WriteOffDebt is in flight (or Pending at FPS). */
    writingOff: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingWriteOff', target: 'closed', actions: 'applySuccess' },
        TRANSACTION_FAILED: [
          { guard: 'writeOffResumesDelinquent', target: 'delinquent', actions: 'applyFailure' },
          { guard: 'isPendingWriteOff', target: 'active', actions: 'applyFailure' },
        ],
      },
    },
    closed: { type: 'final' },
  },
});

export type PostpaidMachine = typeof postpaidMachine;

/** Held plus confirmed debt: what counts against the credit limit now. */
export const exposureOf = (context: PostpaidContext) => context.debt + context.held;
export const pendingSettlementAmount = (context: PostpaidContext) => sumOf(pendingOf(context, 'settle'));
