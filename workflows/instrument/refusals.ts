// Why the machine refuses an event the state handles: the UpdateRejection (limit, state, amount)
// that explains which guard said no. Pure: reads the snapshot, changes nothing.
import { ApplicationFailure } from '@temporalio/workflow';
import { formatDecimal } from '../../fps/money';
import {
  type InstrumentEvent,
  type InstrumentMachineSnapshot,
  type MachineKind,
  type PendingOperation,
  type PostpaidContext,
  type PrepaidContext,
  type SingleUseContext,
} from '../../machines';
import { UpdateRejection } from '../messages';
import { rejection } from './validation';

/** The state handles the event but a guard refused it: say which limit. */
export function refusalFor(
  kind: MachineKind,
  snapshot: InstrumentMachineSnapshot,
  currency: string,
  event: InstrumentEvent,
  what: string,
): ApplicationFailure {
  const money = (amount: number) => `${currency} ${formatDecimal(amount, currency)}`;
  const ref = 'ref' in event ? event.ref : undefined;
  if (ref && snapshot.context.pending.some((op: PendingOperation) => op.ref === ref)) {
    return rejection(UpdateRejection.DuplicateId, `${what} ${ref} is already in progress`);
  }
  switch (event.type) {
    case 'PURCHASE': {
      if (kind === 'prepaid') {
        const ctx = snapshot.context as PrepaidContext;
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} is more than the available balance ${money(ctx.balance)}`,
        );
      }
      if (kind === 'postpaid') {
        const ctx = snapshot.context as PostpaidContext;
        if (ctx.expired) return rejection(UpdateRejection.InvalidState, 'the instrument has expired');
        if (ctx.globalAmountLimit !== null && ctx.totalCharged + event.amount > ctx.globalAmountLimit) {
          return rejection(
            UpdateRejection.LimitExceeded,
            `${money(event.amount)} would exceed the global amount limit ${money(ctx.globalAmountLimit)} (charged ${money(ctx.totalCharged)})`,
          );
        }
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} would exceed the credit limit ${money(ctx.creditLimit)} (debt ${money(ctx.debt)}, pending ${money(ctx.held)})`,
        );
      }
      const ctx = snapshot.context as SingleUseContext;
      return rejection(
        UpdateRejection.LimitExceeded,
        `${money(event.amount)} is more than the authorized ${money(ctx.amount)}`,
      );
    }
    case 'SETTLE': {
      const ctx = snapshot.context as PostpaidContext;
      if (ctx.debt === 0) return rejection(UpdateRejection.InvalidState, 'there is no debt to settle');
      if (ctx.pending.some((op) => op.operation === 'settle' || op.operation === 'writeOff')) {
        return rejection(UpdateRejection.InvalidState, 'a settlement or write-off is already in progress');
      }
      return rejection(
        UpdateRejection.LimitExceeded,
        `${money(event.amount)} is more than the debt ${money(ctx.debt)}`,
      );
    }
    case 'WRITE_OFF': {
      const ctx = snapshot.context as PostpaidContext;
      if (ctx.debt === 0) return rejection(UpdateRejection.InvalidState, 'there is no debt to write off');
      if (ctx.pending.length > 0) return rejection(UpdateRejection.InvalidState, 'operations are still in progress');
      return rejection(
        UpdateRejection.LimitExceeded,
        `a write-off covers the whole debt ${money(ctx.debt)}, not ${money(event.amount)}`,
      );
    }
    case 'REFUND':
      return rejection(
        UpdateRejection.LimitExceeded,
        `${money(event.amount)} is more than the refundable ${money(event.refundable ?? 0)}`,
      );
    case 'CAPTURE':
      return rejection(
        UpdateRejection.LimitExceeded,
        `${money(event.amount)} is more than the reserved ${money((snapshot.context as SingleUseContext).reserved)}`,
      );
    case 'FUND':
      return rejection(UpdateRejection.InvalidAmount, `cannot fund ${money(event.amount)}`);
    case 'CLOSE':
      return rejection(
        UpdateRejection.InvalidState,
        kind === 'postpaid' && (snapshot.context as PostpaidContext).debt > 0
          ? 'the debt must be settled or written off first'
          : 'operations are still in progress',
      );
    default:
      return rejection(UpdateRejection.InvalidState, `cannot ${what} now`);
  }
}
