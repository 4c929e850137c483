// Prepaid instrument: the buyer authorizes SetupPrepaid, the initial FundPrepaid fills the balance,
// purchases are paid from it until it is depleted; top-ups and refunds add to it again.
// A purchase holds its amount while FPS has not answered, so two purchases can never spend the same money.
import { assign, setup } from 'xstate';
import {
  eventRef,
  findPending,
  hasPending,
  isPositiveAmount,
  withoutPending,
  withPending,
  type BaseContext,
  type InstrumentEvent,
  closeReasonFor,
} from './common';

export interface PrepaidInput {
  currency: string;
  /** The amount authorized for the initial funding (informational; AUTHORIZED carries the real one). */
  fundingAmount?: number;
}

export interface PrepaidContext extends BaseContext {
  /** Spendable now: funded + refunded - spent - held by purchases awaiting FPS. */
  balance: number;
  funded: number;
  spent: number;
  refunded: number;
  fundingAmount: number;
}

/** Balance once the outcome event is applied (a success adds funding/refunds, a failure releases a purchase hold). */
function balanceAfter(context: PrepaidContext, event: InstrumentEvent): number {
  const op = findPending(context, eventRef(event));
  if (!op) return context.balance;
  if (event.type === 'TRANSACTION_SUCCEEDED') {
    return op.operation === 'fund' || op.operation === 'refund' ? context.balance + op.amount : context.balance;
  }
  if (event.type === 'TRANSACTION_FAILED')
    return op.operation === 'purchase' ? context.balance + op.amount : context.balance;
  return context.balance;
}

/** The outcome settles the last pending operation and leaves nothing to spend. */
const outcomeDepletes = (context: PrepaidContext, event: InstrumentEvent) =>
  hasPending(context, eventRef(event)) &&
  context.pending.every((op) => op.ref === eventRef(event)) &&
  balanceAfter(context, event) === 0;

export const prepaidMachine = setup({
  types: {
    context: {} as PrepaidContext,
    events: {} as InstrumentEvent,
    input: {} as PrepaidInput,
  },
  guards: {
    hasFundingOperation: ({ event }) =>
      event.type === 'AUTHORIZED' && typeof event.ref === 'string' && isPositiveAmount(event.amount),
    balanceCovers: ({ context, event }) =>
      event.type === 'PURCHASE' &&
      isPositiveAmount(event.amount) &&
      event.amount <= context.balance &&
      !findPending(context, event.ref),
    validFunding: ({ context, event }) =>
      event.type === 'FUND' && isPositiveAmount(event.amount) && !findPending(context, event.ref),
    refundWithinRefundable: ({ context, event }) =>
      event.type === 'REFUND' &&
      isPositiveAmount(event.amount) &&
      event.amount <= (event.refundable ?? 0) &&
      !findPending(context, event.ref),
    isPendingOperation: ({ context, event }) => hasPending(context, eventRef(event)),
    /** The outcome settles the last pending operation and leaves nothing to spend (nor anything that could add to it). */
    outcomeDepletes: ({ context, event }) => outcomeDepletes(context, event),
    outcomeRestoresBalance: ({ context, event }) =>
      hasPending(context, eventRef(event)) && balanceAfter(context, event) > 0,
    nothingPending: ({ context }) => context.pending.length === 0,
  },
  actions: {
    startFunding: assign(({ context, event }) =>
      event.type === 'AUTHORIZED'
        ? {
            pending: withPending(context, { ref: event.ref!, operation: 'fund', amount: event.amount! }),
            fundingAmount: event.amount!,
          }
        : {},
    ),
    holdPurchase: assign(({ context, event }) =>
      event.type === 'PURCHASE'
        ? {
            balance: context.balance - event.amount,
            pending: withPending(context, { ref: event.ref, operation: 'purchase', amount: event.amount }),
          }
        : {},
    ),
    trackFunding: assign(({ context, event }) =>
      event.type === 'FUND'
        ? { pending: withPending(context, { ref: event.ref, operation: 'fund', amount: event.amount }) }
        : {},
    ),
    trackRefund: assign(({ context, event }) =>
      event.type === 'REFUND'
        ? { pending: withPending(context, { ref: event.ref, operation: 'refund', amount: event.amount }) }
        : {},
    ),
    /** FPS confirmed the operation: a purchase's hold becomes spent, funding and refunds become balance. */
    applySuccess: assign(({ context, event }) => {
      if (event.type !== 'TRANSACTION_SUCCEEDED') return {};
      const op = findPending(context, event.ref);
      if (!op) return {};
      const pending = withoutPending(context, op.ref);
      switch (op.operation) {
        case 'purchase':
          return { pending, spent: context.spent + op.amount };
        case 'fund':
          return { pending, balance: context.balance + op.amount, funded: context.funded + op.amount };
        case 'refund':
          return { pending, balance: context.balance + op.amount, refunded: context.refunded + op.amount };
        default:
          return { pending };
      }
    }),
    /** FPS refused the operation: a purchase's hold returns to the balance. */
    applyFailure: assign(({ context, event }) => {
      if (event.type !== 'TRANSACTION_FAILED') return {};
      const op = findPending(context, event.ref);
      if (!op) return {};
      return {
        pending: withoutPending(context, op.ref),
        balance: op.operation === 'purchase' ? context.balance + op.amount : context.balance,
      };
    }),
    recordInitialFundingFailure: assign(({ context, event }) =>
      event.type === 'TRANSACTION_FAILED'
        ? {
            pending: withoutPending(context, event.ref),
            closeReason: `initial funding failed${event.reason ? `: ${event.reason}` : ''}`,
          }
        : {},
    ),
    recordCloseReason: assign(({ event }) => {
      const closeReason = closeReasonFor(event);
      return closeReason === undefined ? {} : { closeReason };
    }),
  },
}).createMachine({
  id: 'prepaid',
  initial: 'awaitingAuthorization',
  context: ({ input }) => ({
    currency: input.currency,
    pending: [],
    balance: 0,
    funded: 0,
    spent: 0,
    refunded: 0,
    fundingAmount: input.fundingAmount ?? 0,
  }),
  states: {
    awaitingAuthorization: {
      on: {
        AUTHORIZED: { guard: 'hasFundingOperation', target: 'funding', actions: 'startFunding' },
        AUTHORIZATION_ABORTED: { target: 'closed', actions: 'recordCloseReason' },
        AUTHORIZATION_FAILED: { target: 'closed', actions: 'recordCloseReason' },
        CLOSE: { target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { target: 'closed', actions: 'recordCloseReason' },
      },
    },
    /** The initial FundPrepaid is in flight. */
    funding: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'active', actions: 'applySuccess' },
        TRANSACTION_PENDING: { guard: 'isPendingOperation', target: 'fundingPending' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'closed', actions: 'recordInitialFundingFailure' },
      },
    },
    /** FPS answered Pending to the initial FundPrepaid: an IPN or a status poll decides. */
    fundingPending: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'active', actions: 'applySuccess' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'closed', actions: 'recordInitialFundingFailure' },
      },
    },
    active: {
      on: {
        PURCHASE: { guard: 'balanceCovers', actions: 'holdPurchase' },
        FUND: { guard: 'validFunding', actions: 'trackFunding' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'outcomeDepletes', target: 'depleted', actions: 'applySuccess' },
          { guard: 'isPendingOperation', actions: 'applySuccess' },
        ],
        TRANSACTION_FAILED: [
          { guard: 'outcomeDepletes', target: 'depleted', actions: 'applyFailure' },
          { guard: 'isPendingOperation', actions: 'applyFailure' },
        ],
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    /** Nothing left to spend; a top-up or a refund makes it active again. */
    depleted: {
      on: {
        FUND: { guard: 'validFunding', actions: 'trackFunding' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'outcomeRestoresBalance', target: 'active', actions: 'applySuccess' },
          { guard: 'isPendingOperation', actions: 'applySuccess' },
        ],
        TRANSACTION_FAILED: { guard: 'isPendingOperation', actions: 'applyFailure' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    closed: { type: 'final' },
  },
});

export type PrepaidMachine = typeof prepaidMachine;
