// The chaos harness shared by test/chaos/chaos.test.ts (full) and test/e2e/chaos-short.test.ts:
// instruments on a process stack, a bounded load of concurrent purchases from clients that retry
// transport errors and 5xx with the SAME Idempotency-Key (the API's contract), fault injectors,
// and the verdict: every purchase checked against the FPS ledger by its CallerReference (lost,
// double-charged), then a full reconciliation (scripts/lib/reconcile.ts) that must be clean.
import { setTimeout as sleep } from 'node:timers/promises';
import { formatDecimal } from '../../fps/money';
import { formatReport, reconcile, SandboxLedger, type ReconcileReport } from '../../scripts/lib/reconcile';
import { activeInstrument, call, until } from '../api/stack';
import type { ProcessStack } from './process-stack';

export type ChaosInstrumentType = 'prepaid' | 'postpaid' | 'single-use';

export interface ChaosInstrument {
  instrumentId: string;
  workflowId: string;
  type: ChaosInstrumentType;
  customerId: string;
}

/**
 * 'unobservable': FPS and the workflow have decided, but the client cannot learn it through the API
 * (the purchase rolled out of the instrument's recent transactions and a retry answers 202 again;
 * see test/api/pending-outcome.test.ts). Not money lost: the reconciliation checks the money.
 */
export type PurchaseFinal = 'approved' | 'declined' | 'rejected' | 'no_answer' | 'unobservable';

export interface PurchaseLog {
  purchaseId: string;
  instrumentId: string;
  type: ChaosInstrumentType;
  amount: number;
  /** HTTP attempts (1 = answered at once). */
  attempts: number;
  transportErrors: number;
  serverErrors: number;
  /** 500 answers: a Temporal or FPS failure the API did not map (it should say 503/504). */
  internalErrors: number;
  /** The first final answer's outcome; 'pending' until resolved. */
  outcome: PurchaseFinal | 'pending';
  wasPending: boolean;
  code?: string;
  transactionId?: string;
}

export interface ScenarioStats {
  scenario: string;
  attempted: number;
  approved: number;
  declined: number;
  pendingResolved: number;
  rejected: number;
  noAnswer: number;
  unobservable: number;
  lost: number;
  doubleCharged: number;
  clientRetries: number;
  internalErrors: number;
  otherOps: number;
  faults: Record<string, number>;
  discrepancies: number;
  seconds: number;
}

const USD = (minor: number) => formatDecimal(minor, 'USD');

// ---- instruments --------------------------------------------------------------------------------

/** Creates and authorizes instruments (before any fault): prepaid $1000, postpaid $500 credit, single use $9.99. */
export async function createInstruments(
  stack: ProcessStack,
  scenario: string,
  counts: Record<ChaosInstrumentType, number>,
): Promise<ChaosInstrument[]> {
  const bodies: Record<ChaosInstrumentType, Record<string, unknown>> = {
    prepaid: { type: 'prepaid', fundingAmount: '1000.00', currency: 'USD', description: `chaos ${scenario}` },
    postpaid: {
      type: 'postpaid',
      creditLimit: '500.00',
      globalAmountLimit: '5000.00',
      currency: 'USD',
      description: `chaos ${scenario}`,
    },
    'single-use': { type: 'single-use', amount: '9.99', currency: 'USD', description: `chaos ${scenario}` },
  };
  const jobs: Array<Promise<ChaosInstrument>> = [];
  for (const type of Object.keys(counts) as ChaosInstrumentType[]) {
    for (let i = 0; i < counts[type]; i++) {
      const customerId = `chaos-${scenario}-${type}-${i}`;
      jobs.push(
        activeInstrument(stack, customerId, bodies[type]).then(({ instrumentId, workflowId }) => ({
          instrumentId,
          workflowId,
          type,
          customerId,
        })),
      );
    }
  }
  return Promise.all(jobs);
}

// ---- the load ---------------------------------------------------------------------------------------

/** Cents that choose the sandbox's outcome: .13 Pending→Success, .14 Pending→Failure, .51 TransactionDenied, .52 Failure. */
export interface AmountMix {
  pendingSuccess: number;
  pendingFailure: number;
  denied: number;
  failure: number;
}
export const DEFAULT_MIX: AmountMix = { pendingSuccess: 0.1, pendingFailure: 0.04, denied: 0.06, failure: 0.04 };

function amountFor(random: () => number, mix: AmountMix, maxDollars: number): number {
  const dollars = 1 + Math.floor(random() * maxDollars);
  const r = random();
  let cents: number;
  if (r < mix.pendingSuccess) cents = 13;
  else if (r < mix.pendingSuccess + mix.pendingFailure) cents = 14;
  else if (r < mix.pendingSuccess + mix.pendingFailure + mix.denied) cents = 51;
  else if (r < mix.pendingSuccess + mix.pendingFailure + mix.denied + mix.failure) cents = 52;
  else {
    // Any cents but the magic ones.
    do cents = Math.floor(random() * 100);
    while ([13, 14, 51, 52].includes(cents));
  }
  return dollars * 100 + cents;
}

/** A seeded PRNG (mulberry32): the same seed gives the same amounts and choices. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Answer {
  status: number;
  body: any;
}

/**
 * One POST, retried on transport errors and 5xx with the same Idempotency-Key until a final answer
 * or the deadline: what every API client must do.
 */
async function postWithRetries(
  stack: ProcessStack,
  path: string,
  key: string,
  body: unknown,
  deadline: number,
  log: { attempts: number; transportErrors: number; serverErrors: number; internalErrors: number },
): Promise<Answer | undefined> {
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    log.attempts++;
    try {
      const response = await fetch(`${stack.apiUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': stack.apiKey, 'idempotency-key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(Math.max(1_000, Math.min(45_000, deadline - Date.now()))),
      });
      const text = await response.text();
      if (response.status < 500) return { status: response.status, body: text ? JSON.parse(text) : undefined };
      log.serverErrors++;
      if (response.status === 500) log.internalErrors++;
      const retryAfter = Number(response.headers.get('retry-after') ?? 0);
      await sleep(
        Math.min(2_000, Math.max(retryAfter * 1000, 100 * 2 ** Math.min(attempt, 4))) * (0.5 + Math.random()),
      );
    } catch {
      log.transportErrors++;
      await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random()));
    }
  }
  return undefined;
}

function classify(p: PurchaseLog, answer: Answer | undefined): void {
  if (!answer) {
    p.outcome = 'no_answer';
    return;
  }
  if (answer.status === 201 || answer.status === 200) {
    p.outcome = 'approved';
    p.transactionId = answer.body?.transactionId;
  } else if (answer.status === 202) {
    p.outcome = 'pending';
    p.wasPending = true;
  } else if (answer.status === 402) {
    p.outcome = 'declined';
    p.code = answer.body?.declineCode;
  } else {
    p.outcome = 'rejected';
    p.code = `${answer.status} ${answer.body?.code ?? ''}`;
  }
}

export interface LoadOptions {
  scenario: string;
  /** Stop issuing new purchases after this long... */
  durationMs: number;
  /** ...or after this many, whichever comes first. */
  maxPurchases: number;
  /**
   * Keep issuing past `durationMs` until this many were issued (default 0): on a slow machine,
   * faults stretch each purchase and a fixed duration alone may end with too little load to mean
   * anything.
   */
  minPurchases?: number;
  concurrency: number;
  seed: number;
  mix?: AmountMix;
  /** A client gives up on a purchase after this long (it counts as no answer). */
  purchaseDeadlineMs?: number;
  /** Pause between one client's requests, ms (default 400-1200: the load spans the whole duration). */
  thinkMs?: [number, number];
}

export interface LoadResult {
  purchases: PurchaseLog[];
  /** Settlements and refunds the load also sent (checked by the reconciliation). */
  otherOps: number;
}

/**
 * Concurrent clients buying on random instruments: one purchase per single-use instrument, many on
 * the others, plus an occasional refund (prepaid) or settlement (postpaid). Bounded by count and time.
 */
export async function runLoad(
  stack: ProcessStack,
  instruments: ChaosInstrument[],
  options: LoadOptions,
): Promise<LoadResult> {
  const random = prng(options.seed);
  const mix = options.mix ?? DEFAULT_MIX;
  const purchases: PurchaseLog[] = [];
  const stopAt = Date.now() + options.durationMs;
  const deadlineMs = options.purchaseDeadlineMs ?? 120_000;
  const [thinkMin, thinkMax] = options.thinkMs ?? [400, 1_200];
  const singleUse = instruments.filter((i) => i.type === 'single-use');
  const multi = instruments.filter((i) => i.type !== 'single-use');
  let issued = 0;
  let otherOps = 0;

  async function buy(instrument: ChaosInstrument, amount: number): Promise<void> {
    const p: PurchaseLog = {
      purchaseId: `${options.scenario}-p${issued++}`,
      instrumentId: instrument.instrumentId,
      type: instrument.type,
      amount,
      attempts: 0,
      transportErrors: 0,
      serverErrors: 0,
      internalErrors: 0,
      outcome: 'pending',
      wasPending: false,
    };
    purchases.push(p);
    const answer = await postWithRetries(
      stack,
      `/instruments/${instrument.instrumentId}/purchases`,
      p.purchaseId,
      { amount: USD(amount), currency: 'USD' },
      Date.now() + deadlineMs,
      p,
    );
    classify(p, answer);
  }

  async function sideOperation(instrument: ChaosInstrument, n: number): Promise<void> {
    const scratch = { attempts: 0, transportErrors: 0, serverErrors: 0, internalErrors: 0 };
    otherOps++;
    if (instrument.type === 'postpaid') {
      await postWithRetries(
        stack,
        `/instruments/${instrument.instrumentId}/settle`,
        `${options.scenario}-settle${n}`,
        {},
        Date.now() + deadlineMs,
        scratch,
      );
      return;
    }
    const approved = purchases.filter((p) => p.instrumentId === instrument.instrumentId && p.outcome === 'approved');
    if (approved.length === 0) return;
    const target = approved[Math.floor(random() * approved.length)];
    await postWithRetries(
      stack,
      `/instruments/${instrument.instrumentId}/refunds`,
      `${options.scenario}-refund${n}`,
      { purchaseId: target.purchaseId },
      Date.now() + deadlineMs,
      scratch,
    );
  }

  const queue = [...singleUse];
  let sideOps = 0;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      const minPurchases = options.minPurchases ?? 0;
      while ((Date.now() < stopAt || issued < minPurchases) && issued < options.maxPurchases) {
        const next = queue.shift();
        if (next) {
          await buy(next, amountFor(random, mix, 8));
        } else if (multi.length > 0) {
          const instrument = multi[Math.floor(random() * multi.length)];
          if (random() < 0.04) await sideOperation(instrument, sideOps++);
          else await buy(instrument, amountFor(random, mix, 9));
        } else {
          break;
        }
        await sleep(thinkMin + random() * (thinkMax - thinkMin));
      }
    }),
  );
  return { purchases, otherOps };
}

/**
 * Follows every purchase answered 202 to its outcome the way the API documents it: the instrument
 * (Location) shows the purchase's transaction once FPS has decided. (Sending the same
 * Idempotency-Key again does not help within one workflow run: Temporal answers a known Update id
 * with its first result, which was "pending" — see docs/guarantees.md.)
 */
export async function resolvePending(stack: ProcessStack, purchases: PurchaseLog[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let open = purchases.filter((p) => p.outcome === 'pending');
  while (open.length > 0 && Date.now() < deadline) {
    const byInstrument = new Map<string, PurchaseLog[]>();
    for (const p of open) byInstrument.set(p.instrumentId, [...(byInstrument.get(p.instrumentId) ?? []), p]);
    await Promise.all(
      [...byInstrument].map(async ([instrumentId, waiting]) => {
        let got;
        try {
          got = await call(stack, 'GET', `/instruments/${instrumentId}`);
        } catch {
          return;
        }
        if (got.status !== 200) return;
        const stillPending = new Set((got.body.pending as Array<{ id: string }>).map((t) => t.id));
        const records = new Map<string, { status: string; transactionId?: string; reason?: { code: string } }>();
        for (const t of got.body.transactions as Array<{
          id: string;
          operation: string;
          status: string;
          transactionId?: string;
          reason?: { code: string };
        }>) {
          if (t.operation === 'purchase') records.set(t.id, t);
        }
        for (const p of waiting) {
          const record = records.get(p.purchaseId);
          if (!record) {
            // Decided (no longer pending) but rolled out of the recent list: the API cannot tell the client.
            if (!stillPending.has(p.purchaseId)) {
              p.outcome = 'unobservable';
              p.code = "rolled out of the instrument's recent transactions";
            }
            continue;
          }
          if (record.status === 'Success' || record.status === 'Reserved') {
            p.outcome = 'approved';
            p.transactionId = record.transactionId;
          } else if (record.status === 'Failure' || record.status === 'Declined' || record.status === 'Cancelled') {
            p.outcome = 'declined';
            p.code = record.reason?.code ?? record.status;
          }
        }
      }),
    );
    open = open.filter((p) => p.outcome === 'pending');
    if (open.length > 0) await sleep(500);
  }
  for (const p of open) p.outcome = 'no_answer';
}

// ---- quiescence and the verdict ------------------------------------------------------------------

async function sandboxJson(stack: ProcessStack, path: string): Promise<any> {
  const response = await fetch(`${stack.sandboxUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`sandbox ${path}: ${response.status}`);
  return response.json();
}

/** Nothing pending anywhere: sandbox transactions and IPN deliveries, the relay, every workflow. */
export async function waitQuiescent(
  stack: ProcessStack,
  instruments: ChaosInstrument[],
  timeoutMs: number,
): Promise<void> {
  await stack.relay?.drained(timeoutMs);
  await until(
    'quiescence (nothing pending at FPS, in IPN delivery or in any workflow)',
    async () => {
      const summary = await sandboxJson(stack, '/admin/summary');
      if (summary.pendingTransactions > 0 || (summary.ipnDeliveries?.pending ?? 0) > 0) return false;
      for (const i of instruments) {
        const got = await call(stack, 'GET', `/instruments/${i.instrumentId}`);
        if (got.status !== 200 || got.body.pending.length > 0) return false;
      }
      return true;
    },
    timeoutMs,
    500,
  );
}

export interface Verdict {
  stats: ScenarioStats;
  report: ReconcileReport;
  problems: string[];
}

/** Each purchase against the FPS ledger (by CallerReference), then the whole reconciliation. */
export async function verify(
  stack: ProcessStack,
  scenario: string,
  instruments: ChaosInstrument[],
  load: LoadResult,
  faults: Record<string, number>,
  startedAt: number,
): Promise<Verdict> {
  const ledger = new SandboxLedger(stack.sandboxUrl);
  const problems: string[] = [];
  let lost = 0;
  let doubleCharged = 0;
  for (const p of load.purchases) {
    const ref = `${p.instrumentId}:pay:${p.purchaseId}`;
    const txs = await ledger.byCallerReference(ref);
    const charged = txs.filter((t) => t.status === 'Success' || t.status === 'Pending' || t.status === 'Reserved');
    if (charged.length > 1) {
      doubleCharged++;
      problems.push(`double charge: ${ref} has ${charged.map((t) => t.id).join(', ')}`);
    }
    if (p.outcome === 'approved' && charged.length === 0) {
      lost++;
      problems.push(
        `lost: ${ref} approved to the client, no money at FPS (${txs.map((t) => `${t.id} ${t.status}`).join(', ') || 'no transaction'})`,
      );
    } else if ((p.outcome === 'declined' || p.outcome === 'rejected') && charged.length > 0) {
      lost++;
      problems.push(
        `lost: ${ref} ${p.outcome} (${p.code}) to the client, but FPS charged ${charged.map((t) => `${t.id} ${t.status}`).join(', ')}`,
      );
    } else if (p.outcome === 'no_answer') {
      lost++;
      problems.push(
        `lost: ${ref} never got a final answer (${p.attempts} attempts, FPS: ${txs.map((t) => `${t.id} ${t.status}`).join(', ') || 'no transaction'})`,
      );
    } else if (p.outcome === 'approved' && p.transactionId && charged[0] && charged[0].id !== p.transactionId) {
      problems.push(`mismatch: ${ref} approved with ${p.transactionId}, FPS has ${charged[0].id}`);
    }
  }
  // Money under a purchase reference the clients never sent: a charge nobody asked for.
  const sent = new Set(load.purchases.map((p) => `${p.instrumentId}:pay:${p.purchaseId}`));
  const mine = new Set(instruments.map((i) => i.instrumentId));
  const all = await ledger.allTransactions();
  for (const t of all.transactions) {
    const owner = t.callerReference.split(':')[0];
    if (!mine.has(owner) || t.operation !== 'PAY' || t.status !== 'Success' || sent.has(t.callerReference)) continue;
    doubleCharged++;
    problems.push(`unexpected charge: ${t.callerReference} ${t.id}`);
  }

  const report = await reconcile({ client: stack.client, ledger, taskQueue: stack.taskQueue, orphans: 'all' });
  if (!report.ok) problems.push(formatReport(report));

  const purchases = load.purchases;
  const stats: ScenarioStats = {
    scenario,
    attempted: purchases.length,
    approved: purchases.filter((p) => p.outcome === 'approved').length,
    declined: purchases.filter((p) => p.outcome === 'declined').length,
    pendingResolved: purchases.filter((p) => p.wasPending && (p.outcome === 'approved' || p.outcome === 'declined'))
      .length,
    rejected: purchases.filter((p) => p.outcome === 'rejected').length,
    noAnswer: purchases.filter((p) => p.outcome === 'no_answer').length,
    unobservable: purchases.filter((p) => p.outcome === 'unobservable').length,
    lost,
    doubleCharged,
    clientRetries: purchases.reduce((n, p) => n + p.transportErrors + p.serverErrors, 0),
    internalErrors: purchases.reduce((n, p) => n + p.internalErrors, 0),
    otherOps: load.otherOps,
    faults,
    discrepancies: report.discrepancies.length,
    seconds: Math.round((Date.now() - startedAt) / 1000),
  };
  return { stats, report, problems };
}

// ---- fault injectors --------------------------------------------------------------------------------

export type SandboxFault =
  | { kind: 'error'; code: string; count: number; actions?: string[] }
  | { kind: 'delay'; ms: number; count: number; actions?: string[] }
  | { kind: 'drop'; count: number; actions?: string[] };

/** Queues sandbox faults; counts them per kind in `tally` (e.g. "drop", "error:Throttling"). */
export async function injectFaults(
  stack: ProcessStack,
  faults: SandboxFault[],
  tally: Record<string, number>,
): Promise<void> {
  const response = await fetch(`${stack.sandboxUrl}/admin/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (response.status !== 201) throw new Error(`POST /admin/faults: ${response.status} ${await response.text()}`);
  for (const f of faults) {
    const name = f.kind === 'error' ? `error:${f.code}` : f.kind;
    tally[name] = (tally[name] ?? 0) + f.count;
  }
}

/** Faults still queued (not consumed by any request) are taken off the tally and cleared. */
export async function settleFaultTally(stack: ProcessStack, tally: Record<string, number>): Promise<void> {
  const { faults } = (await sandboxJson(stack, '/admin/faults')) as { faults: Array<SandboxFault> };
  for (const f of faults) {
    const name = f.kind === 'error' ? `error:${f.code}` : f.kind;
    tally[name] = Math.max(0, (tally[name] ?? 0) - f.count);
  }
  await fetch(`${stack.sandboxUrl}/admin/faults`, { method: 'DELETE' });
}

export async function configureSandboxIpn(
  stack: ProcessStack,
  settings: { duplicate?: number; delayMs?: number; enabled?: boolean },
): Promise<void> {
  const response = await fetch(`${stack.sandboxUrl}/admin/ipn`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(settings),
  });
  if (!response.ok) throw new Error(`POST /admin/ipn: ${response.status} ${await response.text()}`);
}

/** What happened to IPNs: sandbox deliveries (duplicates included), relay duplicates and reorderings. */
export async function ipnTally(stack: ProcessStack): Promise<Record<string, number>> {
  const ipn = (await sandboxJson(stack, '/admin/ipn')) as { duplicate: number; deliveries: Record<string, number> };
  const tally: Record<string, number> = {
    'ipn sent by FPS': Object.values(ipn.deliveries ?? {}).reduce((a, b) => a + b, 0),
  };
  if (stack.relay) {
    tally['ipn duplicated'] = stack.relay.stats.duplicated;
    tally['ipn reordered'] = stack.relay.stats.reordered;
    tally['ipn delayed'] = stack.relay.stats.received;
  }
  return tally;
}

/** Runs `action` at random moments within [from, to] of `windowMs` while `busy` is unsettled. */
export async function atRandomMoments(
  count: number,
  windowMs: number,
  random: () => number,
  action: (n: number) => Promise<void>,
  from = 0.1,
  to = 0.8,
): Promise<void> {
  const moments = Array.from({ length: count }, () => (from + random() * (to - from)) * windowMs).sort((a, b) => a - b);
  const started = Date.now();
  for (let n = 0; n < moments.length; n++) {
    await sleep(Math.max(0, started + moments[n] - Date.now()));
    await action(n);
  }
}

// ---- the table ---------------------------------------------------------------------------------------

export function formatStatsTable(rows: ScenarioStats[]): string {
  const header = [
    'scenario',
    'attempted',
    'approved',
    'declined',
    'pending→resolved',
    'rejected',
    'no answer',
    'unobservable',
    'lost',
    'double-charged',
    'retries',
    '500s',
    'other ops',
    'discrepancies',
    's',
    'faults injected',
  ];
  const body = rows.map((r) => [
    r.scenario,
    String(r.attempted),
    String(r.approved),
    String(r.declined),
    String(r.pendingResolved),
    String(r.rejected),
    String(r.noAnswer),
    String(r.unobservable),
    String(r.lost),
    String(r.doubleCharged),
    String(r.clientRetries),
    String(r.internalErrors),
    String(r.otherOps),
    String(r.discrepancies),
    String(r.seconds),
    Object.entries(r.faults)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k}×${n}`)
      .join(' ') || '-',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 || i === row.length - 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join(' │ ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...body.map(line)].join('\n');
}
