/* eslint-disable @typescript-eslint/no-explicit-any -- reads the sandbox's admin JSON loosely: a field it lacks is a discrepancy, not a crash */
// Reconciliation: what the instrument workflows believe (Temporal) against what FPS did (the
// sandbox ledger, through its admin JSON). Finds money FPS moved that no workflow knows about,
// approvals FPS has no money for, CallerReferences charged twice, balances and debts that
// disagree, and Pending on one side only. scripts/reconcile.ts is its command line; docs/guarantees.md
// says what an operator does with each finding.
//
// Real FPS (not implemented, the interface is LedgerSource): FPS has no "list by CallerReference".
// Per workflow record, GetTransactionStatus(transactionId) gives status and CallerReference; records
// without a transaction id (in doubt) are re-sent by the workflow itself. Balances come from
// GetPrepaidBalance / GetDebtBalance with the FPS instrument id (not in the snapshot today: see
// docs/guarantees.md), and orphans from GetAccountActivity over the run's date range, matched by the
// `<instrumentId>:` prefix of each CallerReference.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { isFinalRecordedStatus, type LedgerStore } from '../../store/ledger';
import { instrumentStatement } from '../../store/statement';
import {
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentIdFromWorkflowId,
  InstrumentTypeKey,
  SEARCH_ATTRIBUTES,
  snapshotQuery,
  type InstrumentSnapshot,
  type InstrumentType,
  type TransactionRecord,
} from '../../workflows/messages';

/**
 * The workflow keeps this many recent transactions in its snapshot (RECENT_TRANSACTIONS in
 * workflows/instrument.ts). A shorter list is the instrument's whole history; a full one is not.
 */
export const WORKFLOW_RECENT_TRANSACTIONS = 20;

// ---- the FPS side ---------------------------------------------------------------------------------

export type LedgerOperation = 'PAY' | 'RESERVE' | 'REFUND' | 'FUND_PREPAID' | 'SETTLE_DEBT' | 'WRITE_OFF_DEBT';
export type LedgerStatus = 'Success' | 'Failure' | 'Pending' | 'Reserved' | 'Cancelled';

export interface LedgerTransaction {
  id: string;
  operation: LedgerOperation;
  callerReference: string;
  status: LedgerStatus;
  /** minor units */
  amount: number;
  currency: string;
  settledAmount: number;
  refundedAmount: number;
  /** FPS prepaid or credit instrument id (the sandbox's), when the transaction has one. */
  fpsInstrumentId: string | null;
  createdAt: string | null;
}

export interface PrepaidLedger {
  id: string;
  balance: number;
  /** balance minus pending payments */
  availableBalance: number;
  pendingOut: number;
  pendingFunding: number;
}

export interface CreditLedger {
  id: string;
  debt: number;
  pendingCharges: number;
  pendingSettlements: number;
  chargedTotal: number;
  settledTotal: number;
  writtenOffTotal: number;
}

/** Where the FPS truth comes from. The sandbox implements it over its admin JSON. */
export interface LedgerSource {
  readonly name: string;
  /**
   * Every transaction the ledger has, when it can list them all; `complete` says whether it did
   * (the orphan check and the instrument totals need a complete list).
   */
  allTransactions(): Promise<{ transactions: LedgerTransaction[]; complete: boolean; total: number }>;
  /** Transactions with exactly this CallerReference (normally 0 or 1). */
  byCallerReference(callerReference: string): Promise<LedgerTransaction[]>;
  /** All transactions of one FPS prepaid/credit instrument. */
  byFpsInstrument(fpsInstrumentId: string): Promise<LedgerTransaction[]>;
  prepaid(fpsInstrumentId: string): Promise<PrepaidLedger | undefined>;
  credit(fpsInstrumentId: string): Promise<CreditLedger | undefined>;
}

type MoneyView = { amount: number; currency: string };

/** The FPS sandbox's admin JSON (sandbox/README.md, "Admin views"): loopback only, no credentials. */
export class SandboxLedger implements LedgerSource {
  readonly name: string;
  /** The admin list answers at most this many rows. */
  static readonly PAGE = 1000;

  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.name = `FPS sandbox at ${this.baseUrl}`;
  }

  private async get<T>(path: string): Promise<T | undefined> {
    const response = await fetch(`${this.baseUrl}${path}`, { signal: AbortSignal.timeout(this.timeoutMs) });
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`${this.name}: GET ${path} answered ${response.status}`);
    return (await response.json()) as T;
  }

  private static tx(raw: Record<string, any>): LedgerTransaction {
    return {
      id: raw.id,
      operation: raw.operation,
      callerReference: raw.callerReference,
      status: raw.status,
      amount: raw.amount?.amount ?? 0,
      currency: raw.amount?.currency ?? '',
      settledAmount: raw.settledAmount?.amount ?? 0,
      refundedAmount: raw.refundedAmount?.amount ?? 0,
      fpsInstrumentId: raw.instrumentId ?? null,
      createdAt: raw.createdAt ?? null,
    };
  }

  async allTransactions() {
    const [list, summary] = await Promise.all([
      this.get<{ transactions: Array<Record<string, any>> }>(`/admin/transactions?limit=${SandboxLedger.PAGE}`),
      this.get<{ transactions: Array<{ count: number }> }>('/admin/summary'),
    ]);
    const transactions = (list?.transactions ?? []).map(SandboxLedger.tx);
    const total = (summary?.transactions ?? []).reduce((sum, row) => sum + row.count, 0);
    return { transactions, complete: transactions.length >= total, total };
  }

  async byCallerReference(callerReference: string) {
    const list = await this.get<{ transactions: Array<Record<string, any>> }>(
      `/admin/transactions?limit=${SandboxLedger.PAGE}&callerReference=${encodeURIComponent(callerReference)}`,
    );
    return (list?.transactions ?? []).map(SandboxLedger.tx);
  }

  async byFpsInstrument(fpsInstrumentId: string) {
    const list = await this.get<{ transactions: Array<Record<string, any>> }>(
      `/admin/transactions?limit=${SandboxLedger.PAGE}&instrumentId=${encodeURIComponent(fpsInstrumentId)}`,
    );
    return (list?.transactions ?? []).map(SandboxLedger.tx);
  }

  async prepaid(id: string) {
    const p = await this.get<Record<string, MoneyView & any>>(`/admin/prepaid/${encodeURIComponent(id)}`);
    if (!p) return undefined;
    return {
      id,
      balance: p.balance.amount,
      availableBalance: p.availableBalance.amount,
      pendingOut: p.pendingOut.amount,
      pendingFunding: p.pendingFunding.amount,
    };
  }

  async credit(id: string) {
    const c = await this.get<Record<string, MoneyView & any>>(`/admin/credit/${encodeURIComponent(id)}`);
    if (!c) return undefined;
    return {
      id,
      debt: c.debt.amount,
      pendingCharges: c.pendingCharges.amount,
      pendingSettlements: c.pendingSettlements.amount,
      chargedTotal: c.chargedTotal.amount,
      settledTotal: c.settledTotal.amount,
      writtenOffTotal: c.writtenOffTotal.amount,
    };
  }
}

// ---- findings ------------------------------------------------------------------------------------

export type DiscrepancyKind =
  /** The workflow says approved/succeeded; FPS has no such transaction, or not in that status. */
  | 'approved_without_fps_money'
  /** FPS moved (or holds) money under a CallerReference the workflow records as declined or failed. */
  | 'declined_but_charged'
  /** More than one FPS transaction for one CallerReference. */
  | 'duplicate_fps_transaction'
  /** An FPS money transaction of this instrument that the workflow has no record of. */
  | 'unrecorded_fps_transaction'
  /** An FPS money transaction whose CallerReference names no instrument workflow at all. */
  | 'orphan_fps_transaction'
  /** Same CallerReference, different amount or transaction id. */
  | 'record_mismatch'
  /** Pending at FPS but not in the workflow, or pending in the workflow but final at FPS. */
  | 'pending_mismatch'
  /** The workflow still has the operation in doubt (no FPS answer yet). */
  | 'unresolved_operation'
  /** Prepaid balance, postpaid debt/charges or the approved-purchase count disagree. */
  | 'balance_mismatch'
  | 'purchase_count_mismatch'
  /** The workflow's state could not be read (failed/terminated run, no worker for a query). */
  | 'workflow_unreadable'
  /** The record (store/) has no row for an FPS transaction of this instrument. */
  | 'unrecorded_in_store'
  /** A recorded row and its FPS transaction disagree on status, amount or transaction id. */
  | 'store_mismatch'
  /** Pending in the record but final at FPS, or the other way round (a resolution not yet written). */
  | 'store_pending_mismatch'
  /** A final recorded row (Success, Failure, Cancelled) whose CallerReference FPS has no transaction for. */
  | 'recorded_without_fps_transaction'
  /** The record's totals (approved purchases, balance or debt by store/statement.ts) disagree with the workflow's. */
  | 'store_totals_mismatch'
  /** A closed instrument's row its workflow never acknowledged counting (counted_at), for over a minute. */
  | 'uncounted_record';

export interface Discrepancy {
  kind: DiscrepancyKind;
  instrumentId?: string;
  workflowId?: string;
  instrumentType?: InstrumentType;
  callerReference?: string;
  transactionId?: string;
  detail: string;
}

/** Kinds that a workflow still working on an operation resolves by itself (wait and run again). */
export const TRANSIENT_KINDS: ReadonlySet<DiscrepancyKind> = new Set([
  'pending_mismatch',
  'unresolved_operation',
  'store_pending_mismatch',
]);

/** A recorded row not counted by its workflow for this long is a finding, not a crash's moment. */
export const UNCOUNTED_GRACE_MS = 60_000;

export interface TypeCounts {
  instruments: number;
  running: number;
  closed: number;
  purchasesApproved: number;
  /** Workflow records compared one by one with FPS transactions. */
  recordsChecked: number;
  /** Instruments whose snapshot list is full (older records only checked through the totals). */
  truncated: number;
  discrepancies: number;
}

export interface ReconcileReport {
  startedAt: string;
  ms: number;
  source: string;
  query: string;
  byType: Record<InstrumentType, TypeCounts>;
  fpsTransactions: { total: number; listed: number; matchedToInstruments: number; complete: boolean };
  discrepancies: Discrepancy[];
  notes: string[];
  ok: boolean;
}

export interface ReconcileOptions {
  client: Client;
  ledger: LedgerSource;
  /** The record (ledger store): when given, reconciliation is three-way. */
  store?: LedgerStore;
  /** Only this customer's instruments. */
  customerId?: string;
  /** Only workflows on this task queue. */
  taskQueue?: string;
  /** Extra visibility filter, ANDed (e.g. `StartTime > "2026-01-01T00:00:00Z"`). */
  query?: string;
  /**
   * 'all': every money transaction in the ledger must belong to a listed instrument (a dedicated
   * sandbox). 'listed' (default when any filter is given): only the listed instruments' own.
   */
  orphans?: 'all' | 'listed';
  /** Parallel workflow reads. */
  concurrency?: number;
  /** Called per finished instrument, for progress output. */
  onProgress?: (done: number, total: number) => void;
}

// ---- the workflow side ---------------------------------------------------------------------------

interface InstrumentView {
  workflowId: string;
  instrumentId: string;
  status: string;
  type?: InstrumentType;
  snapshot?: InstrumentSnapshot;
  error?: string;
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

export function visibilityQuery(options: Pick<ReconcileOptions, 'customerId' | 'taskQueue' | 'query'>): string {
  const parts = [`WorkflowType = ${quote(INSTRUMENT_WORKFLOW_TYPE)}`];
  if (options.customerId) parts.push(`${SEARCH_ATTRIBUTES.CustomerId} = ${quote(options.customerId)}`);
  if (options.taskQueue) parts.push(`TaskQueue = ${quote(options.taskQueue)}`);
  if (options.query) parts.push(`(${options.query})`);
  return parts.join(' AND ');
}

/** The latest run of every instrument workflow matching the query (older runs continued-as-new). */
async function listInstruments(client: Client, query: string): Promise<WorkflowExecutionInfo[]> {
  const latest = new Map<string, WorkflowExecutionInfo>();
  for await (const info of client.workflow.list({ query, pageSize: 1000 })) {
    const known = latest.get(info.workflowId);
    const newer =
      !known ||
      info.startTime > known.startTime ||
      (known.status.name === 'CONTINUED_AS_NEW' && info.status.name !== 'CONTINUED_AS_NEW');
    if (newer) latest.set(info.workflowId, info);
  }
  return [...latest.values()];
}

/** A running workflow answers the snapshot query; a completed one returned its final snapshot. */
async function readInstrument(client: Client, info: WorkflowExecutionInfo): Promise<InstrumentView> {
  const view: InstrumentView = {
    workflowId: info.workflowId,
    instrumentId: instrumentIdFromWorkflowId(info.workflowId),
    status: info.status.name,
    type: info.typedSearchAttributes.get(InstrumentTypeKey) as InstrumentType | undefined,
  };
  const handle = client.workflow.getHandle(info.workflowId);
  try {
    if (info.status.name === 'COMPLETED') {
      view.snapshot = (await client.workflow.getHandle(info.workflowId, info.runId).result()) as InstrumentSnapshot;
    } else {
      // Running: the live state. Failed/terminated/timed out: a worker replays the history to answer.
      view.snapshot = await client.connection.withDeadline(Date.now() + 15_000, () => handle.query(snapshotQuery));
    }
    view.type = view.snapshot.type;
  } catch (err) {
    view.error = `${info.status.name}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return view;
}

async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
  onDone?: (n: number) => void,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
        onDone?.(++done);
      }
    }),
  );
  return out;
}

// ---- the comparison --------------------------------------------------------------------------------

const MONEY_STATUSES: ReadonlySet<LedgerStatus> = new Set(['Success', 'Pending', 'Reserved']);

/** The instrument a CallerReference belongs to: `<instrumentId>:<operation>:...`. */
export const instrumentOfCallerReference = (ref: string) =>
  ref.includes(':') ? ref.slice(0, ref.indexOf(':')) : undefined;

/** Does the workflow record's CallerReference go to FPS? Capture (Settle) and void (Cancel) send none. */
const sendsCallerReference = (r: TransactionRecord) =>
  r.operation !== 'capture' && r.operation !== 'void' && r.operation !== 'close';

function isReserve(r: TransactionRecord): boolean {
  return r.operation === 'purchase' && /:reserve:/.test(r.callerReference);
}

/** Does the workflow record's status agree with the FPS status of its transaction? */
function statusAgrees(r: TransactionRecord, fps: LedgerStatus): boolean {
  switch (r.status) {
    case 'Success':
      return fps === 'Success';
    // A reservation the workflow holds as Reserved may since have been captured (Success) or voided (Cancelled).
    case 'Reserved':
      return isReserve(r) ? fps === 'Reserved' || fps === 'Success' || fps === 'Cancelled' : fps === 'Reserved';
    case 'Failure':
      return fps === 'Failure';
    case 'Cancelled':
      return fps === 'Cancelled';
    case 'Pending':
      return fps === 'Pending';
    default:
      return false;
  }
}

class Findings {
  readonly list: Discrepancy[] = [];
  add(d: Discrepancy): void {
    this.list.push(d);
  }
}

/** Adds a discrepancy of this instrument (its ids and type filled in) and counts it. */
function findingsOf(view: InstrumentView, findings: Findings, counts: TypeCounts) {
  const base = { instrumentId: view.instrumentId, workflowId: view.workflowId, instrumentType: view.snapshot!.type };
  return (kind: DiscrepancyKind, detail: string, extra: Partial<Discrepancy> = {}) => {
    counts.discrepancies++;
    findings.add({ kind, ...base, ...extra, detail });
  };
}

/** Compares one instrument's workflow view with the FPS transactions under its CallerReferences. */
async function reconcileInstrument(
  view: InstrumentView,
  ledger: LedgerSource,
  ledgerByRef: Map<string, LedgerTransaction[]> | undefined,
  ledgerByInstrument: Map<string, LedgerTransaction[]> | undefined,
  findings: Findings,
  counts: TypeCounts,
): Promise<void> {
  const s = view.snapshot!;
  const add = findingsOf(view, findings, counts);

  // Workflow records: the recent list plus open operations (an open one is always in the list too,
  // unless the list rolled past it).
  const records = new Map<string, TransactionRecord>();
  for (const r of [...s.transactions, ...s.pending]) records.set(`${r.operation}:${r.id}`, r);
  const pendingRefs = new Set(s.pending.map((r) => r.callerReference));
  const complete = s.transactions.length < WORKFLOW_RECENT_TRANSACTIONS;
  if (!complete) counts.truncated++;

  // FPS transactions of this instrument: those whose CallerReference names it.
  let mine: LedgerTransaction[];
  if (ledgerByInstrument) {
    mine = ledgerByInstrument.get(view.instrumentId) ?? [];
  } else {
    const refs = [...records.values()].filter(sendsCallerReference).map((r) => r.callerReference);
    const lists = await Promise.all(refs.map((ref) => ledger.byCallerReference(ref)));
    const fpsIds = new Set(
      lists
        .flat()
        .map((t) => t.fpsInstrumentId)
        .filter((id): id is string => Boolean(id)),
    );
    const more = await Promise.all([...fpsIds].map((id) => ledger.byFpsInstrument(id)));
    const byId = new Map<string, LedgerTransaction>();
    for (const t of [...lists.flat(), ...more.flat()])
      if (instrumentOfCallerReference(t.callerReference) === view.instrumentId) byId.set(t.id, t);
    mine = [...byId.values()];
  }
  const mineByRef = new Map<string, LedgerTransaction[]>();
  for (const t of mine) mineByRef.set(t.callerReference, [...(mineByRef.get(t.callerReference) ?? []), t]);
  const lookup = (ref: string) => mineByRef.get(ref) ?? ledgerByRef?.get(ref) ?? [];
  const byTxId = new Map(mine.map((t) => [t.id, t]));

  // 1. One FPS transaction per CallerReference, ever.
  for (const [ref, txs] of mineByRef) {
    if (txs.length > 1) {
      add(
        'duplicate_fps_transaction',
        `${txs.length} FPS transactions (${txs.map((t) => `${t.id} ${t.status}`).join(', ')}) under one CallerReference`,
        {
          callerReference: ref,
        },
      );
    }
  }

  // 2. Every workflow record against FPS.
  let openOps = 0;
  for (const r of records.values()) {
    counts.recordsChecked++;
    const extra = { callerReference: r.callerReference, transactionId: r.transactionId };
    if (!sendsCallerReference(r)) {
      // Capture and void act on the reservation's transaction.
      const target = r.transactionId ? byTxId.get(r.transactionId) : undefined;
      if (!target) continue;
      const done = r.operation === 'capture' ? target.status === 'Success' : target.status === 'Cancelled';
      if (r.status === 'Unknown' || r.status === 'Pending') {
        openOps++;
        add(
          'unresolved_operation',
          `${r.operation} ${r.id} has no FPS answer yet (FPS reservation ${target.id} is ${target.status})`,
          { ...extra, transactionId: target.id },
        );
      } else if (r.operation === 'capture' && r.status === 'Success' && (!done || target.settledAmount !== r.amount)) {
        add(
          'record_mismatch',
          `capture of ${r.amount}: FPS reservation is ${target.status}, settled ${target.settledAmount}`,
          extra,
        );
      } else if (r.operation === 'void' && r.status === 'Cancelled' && !done) {
        add('record_mismatch', `void: FPS reservation is ${target.status}`, extra);
      } else if ((r.status === 'Declined' || r.status === 'Failure') && done) {
        // The workflow thinks the reservation is still held (or was never captured); FPS settled or cancelled it.
        add(
          r.operation === 'capture' ? 'declined_but_charged' : 'record_mismatch',
          `${r.operation} ${r.id} recorded ${r.status} (${r.reason?.code ?? '?'}), but FPS reservation ${target.id} is ${target.status}${r.operation === 'capture' ? `, settled ${target.settledAmount}` : ''}`,
          { ...extra, transactionId: target.id },
        );
      }
      continue;
    }
    const txs = lookup(r.callerReference);
    const money = txs.filter((t) => MONEY_STATUSES.has(t.status));
    const tx = txs[0];
    if (r.status === 'Unknown') {
      openOps++;
      add(
        'unresolved_operation',
        `${r.operation} ${r.id} of ${r.amount} has no FPS answer yet (FPS: ${tx ? `${tx.id} ${tx.status}` : 'no transaction'})`,
        extra,
      );
      continue;
    }
    if (r.status === 'Declined') {
      if (money.length > 0) {
        add(
          'declined_but_charged',
          `${r.operation} ${r.id} declined (${r.reason?.code ?? '?'}) but FPS has ${money.map((t) => `${t.id} ${t.status}`).join(', ')}`,
          extra,
        );
      }
      continue;
    }
    if (!tx) {
      add(
        r.status === 'Failure' ? 'record_mismatch' : 'approved_without_fps_money',
        `${r.operation} ${r.id} is ${r.status} in the workflow; FPS has no transaction`,
        extra,
      );
      continue;
    }
    if (r.status === 'Pending') openOps++;
    if (!statusAgrees(r, tx.status)) {
      if (r.status === 'Pending' || tx.status === 'Pending') {
        add('pending_mismatch', `${r.operation} ${r.id}: workflow ${r.status}, FPS ${tx.status}`, {
          ...extra,
          transactionId: tx.id,
        });
      } else if (r.status === 'Failure' && MONEY_STATUSES.has(tx.status)) {
        add('declined_but_charged', `${r.operation} ${r.id}: workflow Failure, FPS ${tx.status}`, {
          ...extra,
          transactionId: tx.id,
        });
      } else {
        add('approved_without_fps_money', `${r.operation} ${r.id}: workflow ${r.status}, FPS ${tx.status}`, {
          ...extra,
          transactionId: tx.id,
        });
      }
    }
    if (tx.amount !== r.amount) {
      add('record_mismatch', `${r.operation} ${r.id}: workflow amount ${r.amount}, FPS ${tx.amount}`, {
        ...extra,
        transactionId: tx.id,
      });
    }
    if (r.transactionId && r.transactionId !== tx.id) {
      add('record_mismatch', `${r.operation} ${r.id}: workflow transaction ${r.transactionId}, FPS ${tx.id}`, extra);
    }
  }

  // 3. Every FPS money transaction of this instrument has a workflow record; Pending on both sides.
  const recordedRefs = new Set([...records.values()].map((r) => r.callerReference));
  for (const t of mine) {
    if (t.status === 'Pending' && !pendingRefs.has(t.callerReference)) {
      add('pending_mismatch', `FPS ${t.operation} ${t.id} is Pending; the workflow has no pending operation for it`, {
        callerReference: t.callerReference,
        transactionId: t.id,
      });
      continue;
    }
    if (!MONEY_STATUSES.has(t.status) || recordedRefs.has(t.callerReference)) continue;
    // With a full (rolled) list, an older record may be gone: the totals below cover it.
    if (complete) {
      add(
        'unrecorded_fps_transaction',
        `FPS ${t.operation} ${t.id} ${t.status} of ${t.amount} has no workflow record`,
        { callerReference: t.callerReference, transactionId: t.id },
      );
    }
  }

  // 4. Totals: what a rolled list cannot show one by one. Only meaningful when nothing is open.
  const fpsPending = mine.some((t) => t.status === 'Pending');
  if (openOps > 0 || fpsPending) return;
  if (s.type === 'prepaid' || s.type === 'postpaid') {
    const approvedAtFps = mine.filter(
      (t) => t.operation === 'PAY' && t.status === 'Success' && /^[^:]+:pay:/.test(t.callerReference),
    ).length;
    if (approvedAtFps !== s.purchasesApproved) {
      add(
        'purchase_count_mismatch',
        `workflow counts ${s.purchasesApproved} approved purchases; FPS has ${approvedAtFps} successful Pay transactions`,
      );
    }
    counts.purchasesApproved += s.purchasesApproved;
  } else {
    counts.purchasesApproved += s.purchasesApproved;
  }
  const fpsInstrumentId = mine.find((t) => t.fpsInstrumentId)?.fpsInstrumentId ?? undefined;
  if (s.type === 'prepaid' && fpsInstrumentId) {
    const p = await ledger.prepaid(fpsInstrumentId);
    if (p && p.availableBalance !== s.balance) {
      add(
        'balance_mismatch',
        `prepaid balance: workflow ${s.balance}, FPS ${p.availableBalance} available (${p.balance} balance, ${p.pendingOut} pending out) on ${p.id}`,
      );
    }
  }
  if (s.type === 'postpaid' && fpsInstrumentId) {
    const c = await ledger.credit(fpsInstrumentId);
    if (c && c.debt !== s.debt) add('balance_mismatch', `postpaid debt: workflow ${s.debt}, FPS ${c.debt} on ${c.id}`);
    if (c && s.totalCharged !== undefined && c.chargedTotal + c.pendingCharges !== s.totalCharged) {
      add(
        'balance_mismatch',
        `postpaid total charged: workflow ${s.totalCharged}, FPS ${c.chargedTotal} (+${c.pendingCharges} pending) on ${c.id}`,
      );
    }
  }
}

/** Operations whose CallerReference goes to FPS (capture and void act on the reservation's transaction). */
const RECORDED_AT_FPS = new Set(['purchase', 'reserve', 'refund', 'fund', 'settle', 'writeOff']);

/**
 * The record against FPS and the workflow: every FPS transaction of the instrument has a row with
 * its status, amount and id; every final row sent to FPS is there; and, when nothing is open, the
 * record's approved purchases and balance or debt equal the workflow snapshot's.
 */
async function reconcileRecord(
  view: InstrumentView,
  store: LedgerStore,
  ledgerByRef: Map<string, LedgerTransaction[]> | undefined,
  ledgerByInstrument: Map<string, LedgerTransaction[]> | undefined,
  ledger: LedgerSource,
  findings: Findings,
  counts: TypeCounts,
): Promise<void> {
  const s = view.snapshot!;
  const add = findingsOf(view, findings, counts);
  const rows = await store.operationsBetween({ instrumentId: view.instrumentId });
  const rowByRef = new Map(rows.map((r) => [r.caller_reference, r]));
  const fpsOf = async (ref: string) =>
    ledgerByRef ? (ledgerByRef.get(ref) ?? []) : await ledger.byCallerReference(ref);
  const mine =
    ledgerByInstrument?.get(view.instrumentId) ??
    (
      await Promise.all(rows.filter((r) => RECORDED_AT_FPS.has(r.operation)).map((r) => fpsOf(r.caller_reference)))
    ).flat();

  for (const t of mine) {
    const extra = { callerReference: t.callerReference, transactionId: t.id };
    const row = rowByRef.get(t.callerReference);
    if (!row) {
      add('unrecorded_in_store', `FPS ${t.operation} ${t.id} ${t.status} of ${t.amount} has no recorded row`, extra);
      continue;
    }
    // A recorded reservation stays Reserved; FPS moves it to Success (captured) or Cancelled (voided).
    const heldReservation = row.status === 'Reserved'; // only a reservation is ever Reserved (its row's operation is the purchase)
    if (row.status !== t.status && !(heldReservation && (t.status === 'Success' || t.status === 'Cancelled'))) {
      add(
        row.status === 'Pending' || t.status === 'Pending' ? 'store_pending_mismatch' : 'store_mismatch',
        `${row.operation} ${row.operation_id}: recorded ${row.status}, FPS ${t.status}`,
        extra,
      );
    }
    if (row.amount !== t.amount)
      add(
        'store_mismatch',
        `${row.operation} ${row.operation_id}: recorded amount ${row.amount}, FPS ${t.amount}`,
        extra,
      );
    if (row.transaction_id && row.transaction_id !== t.id)
      add(
        'store_mismatch',
        `${row.operation} ${row.operation_id}: recorded transaction ${row.transaction_id}, FPS ${t.id}`,
        extra,
      );
  }
  const atFps = new Set(mine.map((t) => t.callerReference));
  const now = Date.now();
  for (const row of rows) {
    const extra = { callerReference: row.caller_reference, transactionId: row.transaction_id ?? undefined };
    if (RECORDED_AT_FPS.has(row.operation) && row.status !== 'Declined' && isFinalRecordedStatus(row.status)) {
      if (!atFps.has(row.caller_reference) && (await fpsOf(row.caller_reference)).length === 0)
        add(
          'recorded_without_fps_transaction',
          `${row.operation} ${row.operation_id} recorded ${row.status} of ${row.amount}; FPS has no transaction`,
          extra,
        );
    }
    // Migration 004's column: a running workflow acknowledges its rows lazily (as their ids leave
    // its window), and all of them before it completes; so only a completed workflow's row must be
    // (a closed instrument's workflow keeps running through its retention, answering duplicates).
    const countedAt = row.counted_at;
    if (
      view.status === 'COMPLETED' &&
      countedAt === null &&
      now - row.updated_at > UNCOUNTED_GRACE_MS &&
      isFinalRecordedStatus(row.status)
    )
      add(
        'uncounted_record',
        `${row.operation} ${row.operation_id} recorded ${row.status} ${Math.round((now - row.updated_at) / 1000)} s ago; the workflow has not counted it`,
        extra,
      );
  }

  // Totals, when nothing is open on any side.
  const open =
    s.pending.length > 0 || rows.some((r) => r.status === 'Pending') || mine.some((t) => t.status === 'Pending');
  if (open || (s.type !== 'prepaid' && s.type !== 'postpaid')) return;
  const approved = rows.filter((r) => r.operation === 'purchase' && r.status === 'Success');
  if (approved.length !== s.purchasesApproved)
    add(
      'store_totals_mismatch',
      `workflow counts ${s.purchasesApproved} approved purchases; the record has ${approved.length} (sum ${approved.reduce((n, r) => n + r.amount, 0)})`,
    );
  const statement = await instrumentStatement(store, view.instrumentId, s.type);
  const workflowFigure = s.type === 'prepaid' ? s.balance : s.debt;
  if (workflowFigure !== undefined && statement.closing !== workflowFigure)
    add(
      'store_totals_mismatch',
      `${s.type === 'prepaid' ? 'balance' : 'debt'}: workflow ${workflowFigure}, the record's statement ${statement.closing} (refunds ${statement.totals.refund ?? 0})`,
    );
}

const emptyCounts = (): TypeCounts => ({
  instruments: 0,
  running: 0,
  closed: 0,
  purchasesApproved: 0,
  recordsChecked: 0,
  truncated: 0,
  discrepancies: 0,
});

/** Runs one reconciliation pass. Never throws for a discrepancy; throws when a side cannot be read at all. */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const started = Date.now();
  const query = visibilityQuery(options);
  const filtered = Boolean(options.customerId || options.taskQueue || options.query);
  const orphans = options.orphans ?? (filtered ? 'listed' : 'all');
  const findings = new Findings();
  const notes: string[] = [];
  const byType: Record<InstrumentType, TypeCounts> = {
    prepaid: emptyCounts(),
    postpaid: emptyCounts(),
    'single-use': emptyCounts(),
  };

  const [infos, all] = await Promise.all([listInstruments(options.client, query), options.ledger.allTransactions()]);
  const views = await mapLimit(
    infos,
    options.concurrency ?? 8,
    (info) => readInstrument(options.client, info),
    (n) => options.onProgress?.(n, infos.length),
  );

  // A complete ledger listing answers every lookup locally; otherwise each instrument asks.
  let byRef: Map<string, LedgerTransaction[]> | undefined;
  let byInstrument: Map<string, LedgerTransaction[]> | undefined;
  if (all.complete) {
    byRef = new Map();
    byInstrument = new Map();
    for (const t of all.transactions) {
      byRef.set(t.callerReference, [...(byRef.get(t.callerReference) ?? []), t]);
      const owner = instrumentOfCallerReference(t.callerReference);
      if (owner) byInstrument.set(owner, [...(byInstrument.get(owner) ?? []), t]);
    }
  } else {
    notes.push(
      `the ledger lists ${all.transactions.length} of ${all.total} transactions: instruments were looked up one by one, and the orphan check covers only the listed ones`,
    );
  }

  const known = new Set<string>();
  for (const view of views) {
    known.add(view.instrumentId);
    const type = view.type ?? 'prepaid';
    const counts = byType[type];
    counts.instruments++;
    if (view.status === 'RUNNING') counts.running++;
    else counts.closed++;
    if (!view.snapshot) {
      counts.discrepancies++;
      findings.add({
        kind: 'workflow_unreadable',
        instrumentId: view.instrumentId,
        workflowId: view.workflowId,
        instrumentType: view.type,
        detail: view.error ?? view.status,
      });
      continue;
    }
    await reconcileInstrument(view, options.ledger, byRef, byInstrument, findings, counts);
    if (options.store)
      await reconcileRecord(view, options.store, byRef, byInstrument, options.ledger, findings, counts);
  }
  const truncated = Object.values(byType).reduce((n, c) => n + c.truncated, 0);
  if (truncated > 0) {
    notes.push(
      `${truncated} instrument(s) have more history than the snapshot's ${WORKFLOW_RECENT_TRANSACTIONS} recent transactions: ` +
        'older records were checked through totals (approved purchases, balance, debt), not one by one',
    );
  }

  // Money at FPS under a CallerReference of no listed instrument.
  let matched = 0;
  for (const t of all.transactions) {
    const owner = instrumentOfCallerReference(t.callerReference);
    if (owner && known.has(owner)) {
      matched++;
      continue;
    }
    if (orphans !== 'all' || !MONEY_STATUSES.has(t.status)) continue;
    findings.add({
      kind: 'orphan_fps_transaction',
      callerReference: t.callerReference,
      transactionId: t.id,
      instrumentId: owner,
      detail: `FPS ${t.operation} ${t.id} ${t.status} of ${t.amount} ${t.currency}: no instrument workflow ${owner ?? '(no instrument prefix)'}`,
    });
  }
  if (orphans === 'listed') notes.push('orphan check limited to the listed instruments (a filter was given)');

  const discrepancies = findings.list;
  if (options.store) notes.push(`three-way: the record at ${options.store.ledger.describe} was compared too`);
  return {
    startedAt: new Date(started).toISOString(),
    ms: Date.now() - started,
    source: options.ledger.name,
    query,
    byType,
    fpsTransactions: {
      total: all.total,
      listed: all.transactions.length,
      matchedToInstruments: matched,
      complete: all.complete,
    },
    discrepancies,
    notes,
    ok: discrepancies.length === 0,
  };
}

/**
 * Reconciles until clean or `waitMs` has passed, re-running while only transient findings remain
 * (operations the workflows are still resolving). Returns the last report.
 */
export async function reconcileUntilSettled(
  options: ReconcileOptions & { waitMs: number; intervalMs?: number },
): Promise<ReconcileReport> {
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    const report = await reconcile(options);
    const transientOnly = report.discrepancies.every((d) => TRANSIENT_KINDS.has(d.kind));
    if (report.ok || !transientOnly || Date.now() >= deadline) return report;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 1_000));
  }
}

// ---- printing ---------------------------------------------------------------------------------------

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
    .join('\n');
}

/** The report as text: counts per instrument type, then every discrepancy with its ids. */
export function formatReport(report: ReconcileReport): string {
  const lines: string[] = [];
  lines.push(`Reconciliation ${report.startedAt} (${report.ms} ms) against ${report.source}`);
  lines.push(`Workflows: ${report.query}`);
  lines.push('');
  const header = [
    'type',
    'instruments',
    'running',
    'closed',
    'purchases approved',
    'records checked',
    'history rolled',
    'discrepancies',
  ];
  const rows = (Object.entries(report.byType) as Array<[string, TypeCounts]>).map(([type, c]) => [
    type,
    String(c.instruments),
    String(c.running),
    String(c.closed),
    String(c.purchasesApproved),
    String(c.recordsChecked),
    String(c.truncated),
    String(c.discrepancies),
  ]);
  lines.push(table([header, ...rows]));
  const f = report.fpsTransactions;
  lines.push('');
  lines.push(
    `FPS transactions: ${f.total} in the ledger, ${f.listed} listed${f.complete ? '' : ' (incomplete)'}, ${f.matchedToInstruments} belong to listed instruments`,
  );
  for (const note of report.notes) lines.push(`note: ${note}`);
  lines.push('');
  if (report.ok) {
    lines.push('No discrepancies.');
  } else {
    lines.push(`${report.discrepancies.length} discrepanc${report.discrepancies.length === 1 ? 'y' : 'ies'}:`);
    for (const d of report.discrepancies) {
      const ids = [
        d.instrumentId && `instrument ${d.instrumentId}`,
        d.callerReference && `CallerReference ${d.callerReference}`,
        d.transactionId && `FPS ${d.transactionId}`,
      ]
        .filter(Boolean)
        .join(', ');
      lines.push(`  [${d.kind}] ${ids}: ${d.detail}`);
    }
  }
  return lines.join('\n');
}
