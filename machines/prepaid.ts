// Prepaid instrument: the buyer authorizes SetupPrepaid, the initial FundPrepaid fills the balance,
// purchases are paid from it until it is depleted; top-ups and refunds add to it again.
// A purchase holds its amount while FPS has not answered, so two purchases can never spend the same money.
// Balance rules (low-balance threshold, auto top-up) count crossings here; the workflow acts on them.
import { assign, setup } from 'xstate';
import {
  sumOf,
  type AutoTopUpRule,
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
  balanceRules?: Partial<BalanceRules>;
}

/** What the merchant asked to hear of (or do) as the balance falls. Minor units. */
export interface BalanceRules {
  /** One balance.low per crossing below this; null: no rule. */
  lowBalanceThreshold: number | null;
  /** One FundPrepaid per crossing below `below`; null: no rule. */
  autoTopUp: AutoTopUpRule | null;
}

/**
 * The balance against the rules. A crossing is the balance going from at least a threshold to
 * below it; crossings are counted here, once, as the balance changes, never re-derived later.
 */
export interface BalanceWatch {
  rules: BalanceRules;
  belowLow: boolean;
  lowCrossings: number;
  belowTopUp: boolean;
  topUpCrossings: number;
  /** Auto top-up crossings up to this one have had their top-up started (or skipped: no room). */
  topUpsHandled: number;
}

export interface PrepaidContext extends BaseContext {
  /** Spendable now: funded + refunded - spent - held by purchases awaiting FPS. */
  balance: number;
  funded: number;
  spent: number;
  refunded: number;
  fundingAmount: number;
  /** Absent until the instrument has balance rules (and in snapshots persisted before they existed). */
  watch?: BalanceWatch;
}

const NO_RULES: BalanceRules = { lowBalanceThreshold: null, autoTopUp: null };
const UNWATCHED: BalanceWatch = {
  rules: NO_RULES,
  belowLow: false,
  lowCrossings: 0,
  belowTopUp: false,
  topUpCrossings: 0,
  topUpsHandled: 0,
};

export const balanceRulesOf = (context: PrepaidContext): BalanceRules => context.watch?.rules ?? NO_RULES;

/** How many times the balance has crossed below the low-balance threshold. */
export const lowBalanceCrossings = (context: PrepaidContext): number => context.watch?.lowCrossings ?? 0;

/** The auto top-up crossing waiting for its top-up, if any (the latest one: earlier unhandled ones merge into it). */
export function dueTopUpCrossing(context: PrepaidContext): number | undefined {
  const watch = context.watch;
  return watch && watch.topUpCrossings > watch.topUpsHandled ? watch.topUpCrossings : undefined;
}

/**
 * Room left under the SetupPrepaid funding limit. FPS refuses a FundPrepaid that would raise its
 * balance plus funding in flight above the limit, and its balance still holds purchases it has not
 * settled: so everything pending here (held purchases, funding, refunds) counts as if it had landed.
 */
export function fundingHeadroom(context: PrepaidContext): number {
  return Math.max(0, context.fundingAmount - context.balance - sumOf(context.pending));
}

/** What an auto top-up funds now: the rule's amount, cut to the room under the funding limit (0: skipped). */
export function autoTopUpAmount(context: PrepaidContext): number {
  const rule = balanceRulesOf(context).autoTopUp;
  return rule ? Math.min(rule.amount, fundingHeadroom(context)) : 0;
}

/** The watch after the balance became `balance`; `count`: a fall below a threshold is a crossing. */
function watched(watch: BalanceWatch, balance: number, count: boolean): BalanceWatch {
  const { lowBalanceThreshold, autoTopUp } = watch.rules;
  const belowLow = lowBalanceThreshold !== null && balance < lowBalanceThreshold;
  const belowTopUp = autoTopUp !== null && balance < autoTopUp.below;
  return {
    ...watch,
    belowLow,
    lowCrossings: watch.lowCrossings + (count && belowLow && !watch.belowLow ? 1 : 0),
    belowTopUp,
    topUpCrossings: watch.topUpCrossings + (count && belowTopUp && !watch.belowTopUp ? 1 : 0),
  };
}

function rulesWith(current: BalanceRules, change: Partial<BalanceRules>): BalanceRules {
  return {
    lowBalanceThreshold:
      change.lowBalanceThreshold === undefined ? current.lowBalanceThreshold : change.lowBalanceThreshold,
    autoTopUp: change.autoTopUp === undefined ? current.autoTopUp : change.autoTopUp,
  };
}

const validRules = (change: Partial<BalanceRules>): boolean =>
  (change.lowBalanceThreshold === undefined ||
    change.lowBalanceThreshold === null ||
    isPositiveAmount(change.lowBalanceThreshold)) &&
  (change.autoTopUp === undefined ||
    change.autoTopUp === null ||
    (isPositiveAmount(change.autoTopUp.below) && isPositiveAmount(change.autoTopUp.amount)));

/** The initial watch for rules given at creation (none when no rule is set). */
function initialWatch(rules: Partial<BalanceRules> | undefined): BalanceWatch | undefined {
  if (!rules || !validRules(rules)) return undefined;
  const watch = watched({ ...UNWATCHED, rules: rulesWith(NO_RULES, rules) }, 0, false);
  return watch.rules.lowBalanceThreshold === null && watch.rules.autoTopUp === null ? undefined : watch;
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

/** Balance rules can change in every state but the final one. */
const changeRules = {
  SET_BALANCE_RULES: { guard: 'validBalanceRules', actions: 'setBalanceRules' },
} as const;

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
    validBalanceRules: ({ event }) => event.type === 'SET_BALANCE_RULES' && validRules(event),
    autoTopUpDue: ({ context, event }) =>
      event.type === 'AUTO_TOP_UP' &&
      context.watch !== undefined &&
      Number.isSafeInteger(event.crossing) &&
      event.crossing > context.watch.topUpsHandled &&
      event.crossing <= context.watch.topUpCrossings &&
      !findPending(context, event.ref),
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
    /** Counts a crossing when the balance just fell below a rule's threshold. */
    trackBalance: assign(({ context }) =>
      context.watch ? { watch: watched(context.watch, context.balance, true) } : {},
    ),
    setBalanceRules: assign(({ context, event }) => {
      if (event.type !== 'SET_BALANCE_RULES') return {};
      const current = context.watch ?? UNWATCHED;
      return { watch: watched({ ...current, rules: rulesWith(current.rules, event) }, context.balance, false) };
    }),
    /** Every crossing so far is handled; the FundPrepaid is tracked only when there is room for it. */
    startAutoTopUp: assign(({ context, event }) => {
      if (event.type !== 'AUTO_TOP_UP' || !context.watch) return {};
      const amount = autoTopUpAmount(context);
      return {
        watch: { ...context.watch, topUpsHandled: context.watch.topUpCrossings },
        pending: amount > 0 ? withPending(context, { ref: event.ref, operation: 'fund', amount }) : context.pending,
      };
    }),
    recordCloseReason: assign(({ event }) => {
      const closeReason = closeReasonFor(event);
      return closeReason === undefined ? {} : { closeReason };
    }),
  },
}).createMachine({
  id: 'prepaid',
  initial: 'awaitingAuthorization',
  context: ({ input }) => {
    const watch = initialWatch(input.balanceRules);
    return {
      currency: input.currency,
      pending: [],
      balance: 0,
      funded: 0,
      spent: 0,
      refunded: 0,
      fundingAmount: input.fundingAmount ?? 0,
      // No key at all without rules: the persisted form stays what it was.
      ...(watch ? { watch } : {}),
    };
  },
  states: {
    awaitingAuthorization: {
      on: {
        ...changeRules,
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
        ...changeRules,
        TRANSACTION_SUCCEEDED: {
          guard: 'isPendingOperation',
          target: 'active',
          actions: ['applySuccess', 'trackBalance'],
        },
        TRANSACTION_PENDING: { guard: 'isPendingOperation', target: 'fundingPending' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'closed', actions: 'recordInitialFundingFailure' },
      },
    },
    /** FPS answered Pending to the initial FundPrepaid: an IPN or a status poll decides. */
    fundingPending: {
      on: {
        ...changeRules,
        TRANSACTION_SUCCEEDED: {
          guard: 'isPendingOperation',
          target: 'active',
          actions: ['applySuccess', 'trackBalance'],
        },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'closed', actions: 'recordInitialFundingFailure' },
      },
    },
    active: {
      on: {
        ...changeRules,
        PURCHASE: { guard: 'balanceCovers', actions: ['holdPurchase', 'trackBalance'] },
        FUND: { guard: 'validFunding', actions: 'trackFunding' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'outcomeDepletes', target: 'depleted', actions: ['applySuccess', 'trackBalance'] },
          { guard: 'isPendingOperation', actions: ['applySuccess', 'trackBalance'] },
        ],
        TRANSACTION_FAILED: [
          { guard: 'outcomeDepletes', target: 'depleted', actions: ['applyFailure', 'trackBalance'] },
          { guard: 'isPendingOperation', actions: ['applyFailure', 'trackBalance'] },
        ],
        AUTO_TOP_UP: { guard: 'autoTopUpDue', actions: 'startAutoTopUp' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    /** Nothing left to spend; a top-up or a refund makes it active again. */
    depleted: {
      on: {
        ...changeRules,
        // Handled, so a purchase here is refused by the balance guard like one over a non-zero balance
        // (a limit the customer fixes by topping up, not a wrong state). The balance is 0 here, so the
        // guard never lets one through: the state stays depleted and nothing is held.
        PURCHASE: { guard: 'balanceCovers', actions: ['holdPurchase', 'trackBalance'] },
        FUND: { guard: 'validFunding', actions: 'trackFunding' },
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackRefund' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'outcomeRestoresBalance', target: 'active', actions: ['applySuccess', 'trackBalance'] },
          { guard: 'isPendingOperation', actions: ['applySuccess', 'trackBalance'] },
        ],
        TRANSACTION_FAILED: { guard: 'isPendingOperation', actions: ['applyFailure', 'trackBalance'] },
        AUTO_TOP_UP: { guard: 'autoTopUpDue', actions: 'startAutoTopUp' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    closed: { type: 'final' },
  },
});

export type PrepaidMachine = typeof prepaidMachine;
