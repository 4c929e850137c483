// The ledger store from configuration (LEDGER_DATABASE_URL), opened and migrated, pruned by
// LEDGER_RETENTION_DAYS when set.
import { config } from '../config';
import { openLedgerDb, type LedgerDbOptions } from './db';
import { LedgerStore } from './ledger';
import { WebhookStore } from './webhooks';

export { LedgerStore } from './ledger';
export { WebhookStore } from './webhooks';
export type { OperationRow, EventRow } from './schema';

export async function openLedger(
  url: string = config().ledger.url,
  options: LedgerDbOptions = {},
): Promise<LedgerStore> {
  const store = new LedgerStore(
    await openLedgerDb(url, { statementCacheSize: config().ledger.sqliteStatementCache, ...options }),
  );
  const days = config().ledger.retentionDays;
  if (days > 0) {
    await store.prune(days);
    await new WebhookStore(store.ledger).prune(days);
  }
  return store;
}
