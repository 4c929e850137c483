// Workflow values (integer minor units) -> API JSON (decimal string + minor units + currency).
import { formatDecimal, type MinorUnits } from '../fps/money';
import type { InstrumentSnapshot, OperationResult, TransactionRecord } from '../workflows/messages';
import type { Config } from '../config';

export interface MoneyJson {
  amount: string;
  minorUnits: number;
  currency: string;
}

export const money = (minor: MinorUnits, currency: string): MoneyJson => ({
  amount: formatDecimal(minor, currency),
  minorUnits: minor,
  currency,
});
const optionalMoney = (minor: MinorUnits | undefined, currency: string) =>
  minor === undefined ? undefined : money(minor, currency);

export const instrumentPath = (instrumentId: string) => `/instruments/${encodeURIComponent(instrumentId)}`;

/** The workflow in the Temporal Web UI, or without a workflow id the namespace's workflow list. */
export function temporalUiUrl(cfg: Config, workflowId?: string): string {
  const { uiUrl, namespace } = cfg.temporal;
  const list = `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows`;
  return workflowId === undefined ? list : `${list}/${encodeURIComponent(workflowId)}`;
}

export function instrumentLinks(cfg: Config, instrumentId: string, workflowId: string) {
  const self = instrumentPath(instrumentId);
  return { self, purchases: `${self}/purchases`, temporalUi: temporalUiUrl(cfg, workflowId) };
}

export function renderTransaction(t: TransactionRecord) {
  return {
    id: t.id,
    operation: t.operation,
    amount: money(t.amount, t.currency),
    callerReference: t.callerReference,
    transactionId: t.transactionId,
    status: t.status,
    reason: t.reason,
    at: new Date(t.at).toISOString(),
    refunded: optionalMoney(t.refunded, t.currency),
  };
}

export function renderSnapshot(cfg: Config, s: InstrumentSnapshot, workflowId: string) {
  const c = s.currency;
  return {
    instrumentId: s.instrumentId,
    workflowId,
    customerId: s.customerId,
    type: s.type,
    state: s.state,
    currency: c,
    balance: optionalMoney(s.balance, c),
    debt: optionalMoney(s.debt, c),
    creditLimit: optionalMoney(s.creditLimit, c),
    globalAmountLimit: optionalMoney(s.globalAmountLimit, c),
    totalCharged: optionalMoney(s.totalCharged, c),
    amount: optionalMoney(s.amount, c),
    pending: s.pending.map(renderTransaction),
    transactions: s.transactions.map(renderTransaction),
    purchasesApproved: s.purchasesApproved,
    continueAsNewCount: s.continueAsNewCount,
    temporalUiUrl: temporalUiUrl(cfg, workflowId),
    links: instrumentLinks(cfg, s.instrumentId, workflowId),
  };
}

export function renderOperation(instrumentId: string, r: OperationResult) {
  return {
    instrumentId,
    id: r.id,
    operation: r.operation,
    outcome: r.outcome,
    amount: money(r.amount, r.currency),
    callerReference: r.callerReference,
    transactionId: r.transactionId,
    transactionStatus: r.transactionStatus,
    reason: r.reason,
    state: r.state,
    links: {
      instrument: instrumentPath(instrumentId),
      ...(r.operation === 'purchase'
        ? { self: `${instrumentPath(instrumentId)}/purchases/${encodeURIComponent(r.id)}` }
        : {}),
    },
  };
}
