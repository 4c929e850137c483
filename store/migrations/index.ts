// Every migration of the ledger store, in order. Add new ones at the end with the next number;
// never edit one that has shipped (the store records which have run).
import type { Migration, MigrationProvider } from 'kysely';
import * as ledger001 from './001_ledger';
import * as eventSequences002 from './002_event_sequences';
import * as webhooks003 from './003_webhooks';
import * as counted004 from './004_counted';

export const migrations: Record<string, Migration> = {
  '001_ledger': ledger001,
  '002_event_sequences': eventSequences002,
  '003_webhooks': webhooks003,
  '004_counted': counted004,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
