// Links an IPN's trace to the trace of the request that left the operation Pending. The API answers
// such a request 202 and remembers CallerReference → its server span in the record's database (a
// table of its own, `trace_links`, created here when tracing is on: it is telemetry, not the record,
// so it is outside the record's migrations); the IPN route's span, which arrives in a trace of its own
// minutes later and maybe in another API process, finds the purchase's span by the IPN's
// CallerReference and adds a span link to it. Rows older than LINK_RETENTION_MS are pruned.
import { TraceFlags, type SpanContext } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { Logger } from '../config/logger';
import type { LedgerStore } from '../store/ledger';

/** An operation still Pending after this long is resolved by polls or written off: its link is no use. */
export const LINK_RETENTION_MS = 30 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS = 3600 * 1000;

interface TraceLinksTable {
  caller_reference: string;
  trace_id: string;
  span_id: string;
  created_at: number;
}

export interface TraceLinks {
  /** Remembers the span that answered `callerReference` Pending (the first one wins: retries keep it). */
  remember(callerReference: string, span: SpanContext): Promise<void>;
  /** The span that answered it Pending, if one did. */
  find(callerReference: string): Promise<SpanContext | undefined>;
}

/** Creates the table if needed (idempotent, and safe when several API processes start at once). */
export async function openTraceLinks(
  ledger: LedgerStore,
  logger: Logger,
  now: () => number = Date.now,
): Promise<TraceLinks> {
  const db = (ledger.db as unknown as Kysely<unknown>).withTables<{ trace_links: TraceLinksTable }>() as Kysely<{
    trace_links: TraceLinksTable;
  }>;
  const create = async () => {
    await db.schema
      .createTable('trace_links')
      .ifNotExists()
      .addColumn('caller_reference', 'text', (c) => c.primaryKey())
      .addColumn('trace_id', 'text', (c) => c.notNull())
      .addColumn('span_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('trace_links_created_at')
      .ifNotExists()
      .on('trace_links')
      .column('created_at')
      .execute();
  };
  try {
    await create();
  } catch {
    // PostgreSQL: two processes creating it at once; the loser's second try sees it.
    await create();
  }

  let prunedAt = 0;
  const prune = async () => {
    if (now() - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = now();
    await db
      .deleteFrom('trace_links')
      .where('created_at', '<', now() - LINK_RETENTION_MS)
      .execute()
      .catch((err: unknown) => logger.warn({ err }, 'trace links: prune failed'));
  };

  return {
    async remember(callerReference, span) {
      await db
        .insertInto('trace_links')
        .values({ caller_reference: callerReference, trace_id: span.traceId, span_id: span.spanId, created_at: now() })
        .onConflict((oc) => oc.column('caller_reference').doNothing())
        .execute();
      await prune();
    },
    async find(callerReference) {
      const row = await db
        .selectFrom('trace_links')
        .select(['trace_id', 'span_id'])
        .where('caller_reference', '=', callerReference)
        .executeTakeFirst();
      return row && { traceId: row.trace_id, spanId: row.span_id, traceFlags: TraceFlags.SAMPLED, isRemote: true };
    },
  };
}
