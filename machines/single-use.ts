// Single-use instrument: one purchase through the SingleUse pipeline, paid at once (Pay) or
// reserved (Reserve) then captured (Settle) or voided (Cancel); a charge can be refunded in parts.
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
  closeReasonFor,
} from './common';

export interface SingleUseInput {
  currency: string;
  /** The amount the buyer authorized. */
  amount: number;
  mode?: 'pay' | 'reserve';
}

export interface SingleUseContext extends BaseContext {
  /** Authorized amount: the ceiling for the purchase. */
  amount: number;
  mode: 'pay' | 'reserve';
  reserved: number;
  /** Paid or captured. */
  charged: number;
  refunded: number;
}

const refundableOf = (context: SingleUseContext) =>
  context.charged - context.refunded - sumOf(pendingOf(context, 'refund'));

export const singleUseMachine = setup({
  types: {
    context: {} as SingleUseContext,
    events: {} as InstrumentEvent,
    input: {} as SingleUseInput,
  },
  guards: {
    reserveWithinAuthorization: ({ context, event }) =>
      event.type === 'PURCHASE' &&
      context.mode === 'reserve' &&
      isPositiveAmount(event.amount) &&
      event.amount <= context.amount,
    payWithinAuthorization: ({ context, event }) =>
      event.type === 'PURCHASE' &&
      context.mode === 'pay' &&
      isPositiveAmount(event.amount) &&
      event.amount <= context.amount,
    captureWithinReservation: ({ context, event }) =>
      event.type === 'CAPTURE' && isPositiveAmount(event.amount) && event.amount <= context.reserved,
    refundWithinRefundable: ({ context, event }) =>
      event.type === 'REFUND' &&
      isPositiveAmount(event.amount) &&
      event.amount <= refundableOf(context) &&
      !findPending(context, event.ref),
    isPendingOperation: ({ context, event }) => hasPending(context, eventRef(event)),
    isPendingRefund: ({ context, event }) => hasPending(context, eventRef(event), 'refund'),
    /** The refund's success leaves nothing refundable and nothing else open. */
    refundCompletes: ({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return (
        op?.operation === 'refund' && context.refunded + op.amount === context.charged && context.pending.length === 1
      );
    },
    nothingPending: ({ context }) => context.pending.length === 0,
  },
  actions: {
    trackOperation: assign(({ context, event }) => {
      switch (event.type) {
        case 'PURCHASE':
          return { pending: withPending(context, { ref: event.ref, operation: 'purchase', amount: event.amount }) };
        case 'CAPTURE':
          return { pending: withPending(context, { ref: event.ref, operation: 'capture', amount: event.amount }) };
        case 'VOID':
          return { pending: withPending(context, { ref: event.ref, operation: 'void', amount: context.reserved }) };
        case 'REFUND':
          return { pending: withPending(context, { ref: event.ref, operation: 'refund', amount: event.amount }) };
        default:
          return {};
      }
    }),
    applyPayment: assign(({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return op ? { pending: withoutPending(context, op.ref), charged: op.amount } : {};
    }),
    applyReservation: assign(({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return op ? { pending: withoutPending(context, op.ref), reserved: op.amount } : {};
    }),
    applyCapture: assign(({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return op ? { pending: withoutPending(context, op.ref), charged: op.amount, reserved: 0 } : {};
    }),
    applyVoid: assign(({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return op ? { pending: withoutPending(context, op.ref), reserved: 0, closeReason: 'reservation voided' } : {};
    }),
    applyRefund: assign(({ context, event }) => {
      const op = findPending(context, eventRef(event));
      return op ? { pending: withoutPending(context, op.ref), refunded: context.refunded + op.amount } : {};
    }),
    dropOperation: assign(({ context, event }) => ({ pending: withoutPending(context, eventRef(event)) })),
    recordDecline: assign(({ context, event }) =>
      event.type === 'TRANSACTION_FAILED'
        ? {
            pending: withoutPending(context, event.ref),
            closeReason: `purchase declined${event.reason ? `: ${event.reason}` : ''}`,
          }
        : {},
    ),
    recordCloseReason: assign(({ event }) => {
      const closeReason = closeReasonFor(event);
      return closeReason === undefined ? {} : { closeReason };
    }),
  },
}).createMachine({
  id: 'singleUse',
  initial: 'awaitingAuthorization',
  context: ({ input }) => ({
    currency: input.currency,
    pending: [],
    amount: input.amount,
    mode: input.mode ?? 'pay',
    reserved: 0,
    charged: 0,
    refunded: 0,
  }),
  states: {
    awaitingAuthorization: {
      on: {
        AUTHORIZED: { target: 'authorized' },
        AUTHORIZATION_ABORTED: { target: 'closed', actions: 'recordCloseReason' },
        AUTHORIZATION_FAILED: { target: 'closed', actions: 'recordCloseReason' },
        CLOSE: { target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { target: 'closed', actions: 'recordCloseReason' },
      },
    },
    /** The token is ready for its one purchase. */
    authorized: {
      on: {
        PURCHASE: [
          { guard: 'payWithinAuthorization', target: 'paying', actions: 'trackOperation' },
          { guard: 'reserveWithinAuthorization', target: 'reserving', actions: 'trackOperation' },
        ],
        CLOSE: { target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { target: 'closed', actions: 'recordCloseReason' },
      },
    },
    /** Pay is in flight. */
    paying: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'paid', actions: 'applyPayment' },
        TRANSACTION_PENDING: { guard: 'isPendingOperation', target: 'paymentPending' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'declined', actions: 'recordDecline' },
      },
    },
    paymentPending: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'paid', actions: 'applyPayment' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'declined', actions: 'recordDecline' },
      },
    },
    /** Reserve is in flight. */
    reserving: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'reserved', actions: 'applyReservation' },
        TRANSACTION_PENDING: { guard: 'isPendingOperation', target: 'reservationPending' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'declined', actions: 'recordDecline' },
      },
    },
    reservationPending: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'reserved', actions: 'applyReservation' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'declined', actions: 'recordDecline' },
      },
    },
    reserved: {
      on: {
        CAPTURE: { guard: 'captureWithinReservation', target: 'capturing', actions: 'trackOperation' },
        VOID: { target: 'voiding', actions: 'trackOperation' },
      },
    },
    /** Settle of the reservation is in flight. */
    capturing: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'captured', actions: 'applyCapture' },
        TRANSACTION_PENDING: { guard: 'isPendingOperation', target: 'capturePending' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'reserved', actions: 'dropOperation' },
      },
    },
    capturePending: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'captured', actions: 'applyCapture' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'reserved', actions: 'dropOperation' },
      },
    },
    /** Cancel of the reservation is in flight (or Pending at FPS). */
    voiding: {
      on: {
        TRANSACTION_SUCCEEDED: { guard: 'isPendingOperation', target: 'voided', actions: 'applyVoid' },
        TRANSACTION_FAILED: { guard: 'isPendingOperation', target: 'reserved', actions: 'dropOperation' },
      },
    },
    paid: {
      on: {
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackOperation' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'refundCompletes', target: 'refunded', actions: 'applyRefund' },
          { guard: 'isPendingRefund', target: 'partiallyRefunded', actions: 'applyRefund' },
        ],
        TRANSACTION_FAILED: { guard: 'isPendingRefund', actions: 'dropOperation' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    captured: {
      on: {
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackOperation' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'refundCompletes', target: 'refunded', actions: 'applyRefund' },
          { guard: 'isPendingRefund', target: 'partiallyRefunded', actions: 'applyRefund' },
        ],
        TRANSACTION_FAILED: { guard: 'isPendingRefund', actions: 'dropOperation' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    partiallyRefunded: {
      on: {
        REFUND: { guard: 'refundWithinRefundable', actions: 'trackOperation' },
        TRANSACTION_SUCCEEDED: [
          { guard: 'refundCompletes', target: 'refunded', actions: 'applyRefund' },
          { guard: 'isPendingRefund', actions: 'applyRefund' },
        ],
        TRANSACTION_FAILED: { guard: 'isPendingRefund', actions: 'dropOperation' },
        CLOSE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
        EXPIRE: { guard: 'nothingPending', target: 'closed', actions: 'recordCloseReason' },
      },
    },
    refunded: { type: 'final' },
    voided: { type: 'final' },
    declined: { type: 'final' },
    closed: { type: 'final' },
  },
});

export type SingleUseMachine = typeof singleUseMachine;
export const refundableAmount = refundableOf;
