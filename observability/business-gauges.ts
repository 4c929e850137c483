// Business gauges, exposed by the API process (it holds the record's connection and a Temporal
// client; the worker may run as many processes): money owed from the record (prepaid liability,
// postpaid debt), pending operations and their age, the webhook backlog, and open instruments by
// type and state from visibility counts (one per type and machine state: visibility groups counts by
// ExecutionStatus only). A few grouped queries, recomputed at most every
// METRICS_STORE_REFRESH_MS whatever the scrape rate; never one query per workflow.
import type { Client } from '@temporalio/client';
import { sql } from 'kysely';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../config/logger';
import type { LedgerStore } from '../store/ledger';
import { stateNames } from '../machines';
import { effectOf } from '../store/statement';
import { INSTRUMENT_TYPES, INSTRUMENT_WORKFLOW_TYPE, SEARCH_ATTRIBUTES } from '../workflows/messages';

interface Snapshot {
  money: Array<{ kind: 'prepaid_liability' | 'outstanding_debt'; currency: string; minor: number }>;
  pending: Array<{ operation: string; count: number; oldestAt: number }>;
  webhooks: { pending: number; oldestAt: number | null; failed: number };
  open: Array<{ type: string; state: string; count: number }>;
  at: number;
}

export interface BusinessGaugeSources {
  ledger?: LedgerStore;
  client?: Client;
  /** Count only instruments on this task queue (this deployment's: the API starts them there). */
  taskQueue?: string;
  refreshMs: number;
  logger: Logger;
  now?: () => number;
}

export function registerBusinessGauges(registry: Registry, sources: BusinessGaugeSources): void {
  const now = sources.now ?? Date.now;
  const refreshErrors = new Counter({
    name: 'business_gauges_refresh_errors_total',
    help: 'Failed refreshes of the business gauges (the last values are kept)',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  let last: Snapshot | undefined;
  let inFlight: Promise<Snapshot | undefined> | undefined;
  const current = (): Promise<Snapshot | undefined> => {
    if (last && now() - last.at < sources.refreshMs) return Promise.resolve(last);
    inFlight ??= refresh().finally(() => (inFlight = undefined));
    return inFlight;
  };

  async function refresh(): Promise<Snapshot | undefined> {
    const next: Snapshot = last
      ? { ...last, at: now() }
      : { money: [], pending: [], webhooks: { pending: 0, oldestAt: null, failed: 0 }, open: [], at: now() };
    const { ledger, client } = sources;
    await Promise.all([
      ledger &&
        recordFigures(ledger).then(
          (figures) => Object.assign(next, figures),
          (err: unknown) => {
            refreshErrors.inc({ source: 'record' });
            sources.logger.warn({ err }, 'business gauges: the record did not answer');
          },
        ),
      client &&
        openInstruments(client, sources.taskQueue).then(
          (open) => (next.open = open),
          (err: unknown) => {
            refreshErrors.inc({ source: 'visibility' });
            sources.logger.warn({ err }, 'business gauges: visibility did not answer');
          },
        ),
    ]);
    last = next;
    return next;
  }

  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: Snapshot) => void): Gauge =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const snapshot = await current();
        this.reset();
        if (snapshot) fill(this, snapshot);
      },
    });

  if (sources.ledger) {
    gauge(
      'prepaid_liability_minor_units',
      'Money held on prepaid instruments (successful fundings + refunds − purchases in the record), minor units',
      ['currency'],
      (g, s) =>
        s.money.filter((m) => m.kind === 'prepaid_liability').forEach((m) => g.set({ currency: m.currency }, m.minor)),
    );
    gauge(
      'outstanding_debt_minor_units',
      'Postpaid debt not yet settled or written off (purchases − refunds − settlements − write-offs in the record), minor units',
      ['currency'],
      (g, s) =>
        s.money.filter((m) => m.kind === 'outstanding_debt').forEach((m) => g.set({ currency: m.currency }, m.minor)),
    );
    gauge('pending_operations', 'Operations whose FPS outcome is still Pending, by operation', ['operation'], (g, s) =>
      s.pending.forEach((p) => g.set({ operation: p.operation }, p.count)),
    );
    gauge(
      'pending_operation_oldest_age_seconds',
      'Age of the oldest Pending operation, by operation',
      ['operation'],
      (g, s) => s.pending.forEach((p) => g.set({ operation: p.operation }, Math.max(0, (s.at - p.oldestAt) / 1000))),
    );
    gauge('webhook_deliveries_backlog', 'Webhook deliveries not yet delivered (pending)', [], (g, s) =>
      g.set(s.webhooks.pending),
    );
    gauge(
      'webhook_backlog_oldest_age_seconds',
      'Age of the oldest undelivered webhook delivery (0: none)',
      [],
      (g, s) => g.set(s.webhooks.oldestAt === null ? 0 : Math.max(0, (s.at - s.webhooks.oldestAt) / 1000)),
    );
    gauge('webhook_deliveries_failed', 'Webhook deliveries that failed for good (retry window over)', [], (g, s) =>
      g.set(s.webhooks.failed),
    );
  }
  if (sources.client) {
    gauge(
      'instruments_open',
      'Open (running) instrument workflows by type and state (the InstrumentState search attribute), from Temporal visibility counts',
      ['type', 'state'],
      (g, s) => s.open.forEach((o) => g.set({ type: o.type, state: o.state }, o.count)),
    );
  }
}

async function recordFigures(ledger: LedgerStore): Promise<Pick<Snapshot, 'money' | 'pending' | 'webhooks'>> {
  const db = ledger.db;
  const [sums, pending, backlog, failed] = await Promise.all([
    db
      .selectFrom('operations')
      .select(['instrument_type', 'operation', 'currency', sql<string>`SUM(amount)`.as('total')])
      .where('status', '=', 'Success')
      .where('instrument_type', 'in', ['prepaid', 'postpaid'])
      .groupBy(['instrument_type', 'operation', 'currency'])
      .execute(),
    db
      .selectFrom('operations')
      .select(['operation', sql<string>`COUNT(*)`.as('n'), sql<string>`MIN(created_at)`.as('oldest')])
      .where('status', '=', 'Pending')
      .groupBy('operation')
      .execute(),
    db
      .selectFrom('deliveries')
      .select([sql<string>`COUNT(*)`.as('n'), sql<string | null>`MIN(created_at)`.as('oldest')])
      .where('status', '=', 'pending')
      .executeTakeFirst(),
    db
      .selectFrom('deliveries')
      .select(sql<string>`COUNT(*)`.as('n'))
      .where('status', '=', 'failed')
      .executeTakeFirst(),
  ]);
  const money = new Map<string, Snapshot['money'][number]>();
  for (const row of sums) {
    const kind = row.instrument_type === 'prepaid' ? 'prepaid_liability' : 'outstanding_debt';
    const key = `${kind}:${row.currency}`;
    const entry = money.get(key) ?? { kind, currency: row.currency, minor: 0 };
    entry.minor += effectOf(row.instrument_type, {
      operation: row.operation,
      amount: Number(row.total),
      status: 'Success',
    });
    money.set(key, entry);
  }
  return {
    money: [...money.values()],
    pending: pending.map((p) => ({ operation: p.operation, count: Number(p.n), oldestAt: Number(p.oldest) })),
    webhooks: {
      pending: Number(backlog?.n ?? 0),
      oldestAt: backlog?.oldest == null ? null : Number(backlog.oldest),
      failed: Number(failed?.n ?? 0),
    },
  };
}

/** Every (type, state) pair of the machines: 30 small count queries, a few at a time. */
const TYPE_STATES = INSTRUMENT_TYPES.flatMap((type) => stateNames(type).map((state) => ({ type, state })));
const COUNT_CONCURRENCY = 6;

/** One visibility count per instrument type and state (InstrumentState, kept current by the workflow). */
async function openInstruments(client: Client, taskQueue?: string): Promise<Snapshot['open']> {
  const queue = taskQueue ? ` AND TaskQueue = "${taskQueue.replace(/[\\"]/g, '\\$&')}"` : '';
  const open: Snapshot['open'] = [];
  let next = 0;
  const worker = async () => {
    while (next < TYPE_STATES.length) {
      const { type, state } = TYPE_STATES[next++];
      const { count } = await client.workflow.count(
        `WorkflowType = "${INSTRUMENT_WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND ${SEARCH_ATTRIBUTES.InstrumentType} = "${type}" AND ${SEARCH_ATTRIBUTES.InstrumentState} = "${state}"${queue}`,
      );
      open.push({ type, state, count });
    }
  };
  await Promise.all(Array.from({ length: COUNT_CONCURRENCY }, worker));
  return open;
}
