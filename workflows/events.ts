// The merchant events the instrument workflow decides itself (lifecycle and balance.low; money
// events come from the money activities' rows): their keys and bodies. Workflow code: pure.
import type { InstrumentEventType } from '../activities/record-contract';
import { formatDecimal } from '../fps/money';
import type { InstrumentSnapshot } from './messages';

/** Unique per fact on one instrument: the store keeps one event per key, so a retried or replayed emit is harmless. */
export const lifecycleEventKey = {
  authorized: () => 'instrument.authorized',
  activated: () => 'instrument.activated',
  expired: () => 'instrument.expired',
  closed: () => 'instrument.closed',
  /** A postpaid account can become delinquent again after it settled: one event per time. */
  delinquent: (n: number) => `instrument.delinquent:${n}`,
  balanceLow: (crossing: number) => `balance.low:${crossing}`,
} as const;

export interface WorkflowEvent {
  type: InstrumentEventType;
  eventKey: string;
  data: Record<string, unknown>;
}

/** The instrument as events carry it: amounts as decimal strings with their currency, as the API's events render money. */
export function instrumentEventData(s: InstrumentSnapshot): Record<string, unknown> {
  const money = (minor: number | undefined) =>
    minor === undefined ? undefined : { amount: formatDecimal(minor, s.currency), currency: s.currency };
  const rules = s.balanceRules;
  return {
    instrumentId: s.instrumentId,
    customerId: s.customerId,
    type: s.type,
    state: s.state,
    currency: s.currency,
    balance: money(s.balance),
    debt: money(s.debt),
    creditLimit: money(s.creditLimit),
    amount: money(s.amount),
    settlementFailures: s.settlementFailures,
    closeReason: s.closeReason,
    final: s.final,
    balanceRules: rules && {
      lowBalanceThreshold: money(rules.lowBalanceThreshold),
      autoTopUp: rules.autoTopUp && { below: money(rules.autoTopUp.below), amount: money(rules.autoTopUp.amount) },
    },
  };
}
