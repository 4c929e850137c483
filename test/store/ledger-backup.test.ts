// The backup and restore commands README.md gives for the record, run as written: sqlite3 .backup
// of a live WAL database, a checkpointed copy of a stopped one, and pg_dump/pg_restore. A restored
// record answers the same transactions and statements as the original.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { postgresAvailable, postgresBinDir, startPostgres, type PostgresCluster } from '../../scripts/lib/postgres';
import { openLedgerDb } from '../../store/db';
import { LedgerStore } from '../../store/ledger';
import { instrumentStatement } from '../../store/statement';

const sqlite3Available = () => {
  try {
    execFileSync('sqlite3', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

async function fill(store: LedgerStore, instrumentId: string): Promise<void> {
  const base = {
    instrument_id: instrumentId,
    customer_id: 'cust-backup',
    instrument_type: 'prepaid',
    currency: 'USD',
    transaction_id: null,
    decline_code: null,
    decline_reason: null,
    parent_operation_id: null,
    description: null,
    opened_by: 'test',
  };
  await store.recordOperation({
    ...base,
    caller_reference: `${instrumentId}:fund:wf:initial`,
    operation: 'fund',
    operation_id: 'wf:initial',
    amount: 2000,
    status: 'Success',
  });
  for (let i = 0; i < 5; i++)
    await store.recordOperation({
      ...base,
      caller_reference: `${instrumentId}:pay:p${i}`,
      operation: 'purchase',
      operation_id: `p${i}`,
      amount: 100 + i,
      status: 'Success',
    });
}

async function view(store: LedgerStore, instrumentId: string) {
  const { rows } = await store.transactions({ instrumentId, limit: 100 });
  const statement = await instrumentStatement(store, instrumentId, 'prepaid');
  return { rows, closing: statement.closing, lines: statement.lines.length };
}

describe('store: backing up and restoring the record as README.md says', function () {
  this.timeout(120_000);

  it('SQLite: sqlite3 .backup of the live file, and a copy after a WAL checkpoint of a stopped one', async function () {
    if (!sqlite3Available()) this.skip();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-backup-'));
    const file = path.join(dir, 'ledger.sqlite');
    const store = new LedgerStore(await openLedgerDb(`sqlite:${file}`));
    await fill(store, 'ins_backup_sqlite');
    const original = await view(store, 'ins_backup_sqlite');
    assert.equal(original.closing, 2000 - 510);

    // Online, while the store holds the file open in WAL mode.
    const backup = path.join(dir, 'ledger-backup.sqlite');
    execFileSync('sqlite3', [file, `.backup '${backup}'`]);
    const restored = new LedgerStore(await openLedgerDb(`sqlite:${backup}`));
    assert.deepEqual(await view(restored, 'ins_backup_sqlite'), original);
    await restored.close();

    // Offline: stop the writers, fold the WAL into the file, copy the one file.
    await store.close();
    execFileSync('sqlite3', [file, 'PRAGMA wal_checkpoint(TRUNCATE);']);
    const copy = path.join(dir, 'ledger-copy.sqlite');
    copyFileSync(file, copy);
    assert.ok(!existsSync(`${copy}-wal`));
    const copied = new LedgerStore(await openLedgerDb(`sqlite:${copy}`));
    assert.deepEqual(await view(copied, 'ins_backup_sqlite'), original);
    await copied.close();
  });

  describe('PostgreSQL', () => {
    let pg: PostgresCluster | undefined;
    before(async function () {
      if (!postgresAvailable()) this.skip();
      pg = await startPostgres();
    });
    after(async () => pg?.stop());

    it('pg_dump -Fc, then pg_restore into an empty database', async () => {
      const source = await pg!.createDatabase('ledger_live');
      const target = await pg!.createDatabase('ledger_restored');
      const store = new LedgerStore(await openLedgerDb(source));
      await fill(store, 'ins_backup_pg');
      const original = await view(store, 'ins_backup_pg');

      const dump = path.join(mkdtempSync(path.join(os.tmpdir(), 'ledger-dump-')), 'ledger.dump');
      const bin = (name: string) =>
        existsSync(path.join(postgresBinDir(), name)) ? path.join(postgresBinDir(), name) : name;
      execFileSync(bin('pg_dump'), ['--format=custom', '--no-owner', `--dbname=${source}`, `--file=${dump}`]);
      execFileSync(bin('pg_restore'), ['--no-owner', '--exit-on-error', `--dbname=${target}`, dump]);
      await store.close();

      // Opening runs the migrator: the restored kysely_migration table says nothing is left to do.
      const restored = new LedgerStore(await openLedgerDb(target));
      assert.deepEqual(await view(restored, 'ins_backup_pg'), original);
      await restored.close();
    });
  });
});
