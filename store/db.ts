// Opens the ledger database: SQLite (better-sqlite3, a file, WAL) by default, PostgreSQL when the
// URL says postgres://. Applies the migrations on open, so every process starts on the current schema.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { migrationProvider } from './migrations';
import type { LedgerDatabase } from './schema';

export type LedgerDialect = 'sqlite' | 'postgres';

export interface LedgerDb {
  db: Kysely<LedgerDatabase>;
  dialect: LedgerDialect;
  /** Where it is, without credentials (for logs). */
  describe: string;
  close(): Promise<void>;
}

// BIGINT comes back from pg as a string; our values (minor units, epoch ms) fit a JS number.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** `postgres://…` or `postgresql://…` → PostgreSQL; `sqlite:<path>`, `file:<path>` or a plain path → SQLite. */
export function parseLedgerUrl(url: string): { dialect: LedgerDialect; target: string } {
  if (/^postgres(ql)?:\/\//.test(url)) return { dialect: 'postgres', target: url };
  const file = url.replace(/^(sqlite|file):(\/\/)?/, '');
  if (!file) throw new Error('LEDGER_DATABASE_URL: no SQLite file given');
  return { dialect: 'sqlite', target: file };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable)';
  }
}

export interface LedgerDbOptions {
  /**
   * PostgreSQL: an idle pooled connection was lost (server restart, network). The pool drops it and
   * the next query connects again; without a listener pg would throw it as an uncaught error.
   */
  onConnectionLost?: (err: Error) => void;
  /** SQLite: prepared statements kept per SQL text (default 256; 0 prepares every query again). */
  statementCacheSize?: number;
}

/** Opens (and migrates) the ledger at `url`. */
export async function openLedgerDb(url: string, options: LedgerDbOptions = {}): Promise<LedgerDb> {
  const { dialect, target } = parseLedgerUrl(url);
  let db: Kysely<LedgerDatabase>;
  if (dialect === 'sqlite') {
    mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    const sqlite = new Database(target);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    // The API and the worker write the same file: wait for the other's transaction instead of failing.
    sqlite.pragma('busy_timeout = 5000');
    const size = options.statementCacheSize ?? STATEMENT_CACHE_SIZE;
    const database = size > 0 ? withStatementCache(sqlite, size) : sqlite;
    db = new Kysely<LedgerDatabase>({ dialect: new SqliteDialect({ database }) });
  } else {
    const pool = new pg.Pool({ connectionString: target, max: 10 });
    pool.on('error', (err) => options.onConnectionLost?.(err));
    // The pool listens only to idle clients. A client checked out between queries (a transaction
    // awaiting its next statement) whose server goes away would otherwise throw its 'error' event
    // uncaught and end the process; this listener stays for the client's life. The broken client
    // is not queryable, so its statement fails and the pool discards it on release.
    pool.on('connect', (client) => client.on('error', (err) => options.onConnectionLost?.(err)));
    db = new Kysely<LedgerDatabase>({ dialect: new PostgresDialect({ pool }) });
  }
  const error = await migrate(db, dialect);
  if (error) {
    await db.destroy();
    throw error;
  }
  return {
    db,
    dialect,
    describe: dialect === 'sqlite' ? `sqlite:${target}` : redact(target),
    close: () => db.destroy(),
  };
}

/** Prepared statements kept per SQL text by default (the store's queries are a few dozen shapes). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * The database with `prepare` answered from a cache: Kysely's SQLite driver prepares every query it
 * runs, and preparing (parsing and planning the SQL) is most of what a small statement costs. Kysely
 * runs one query at a time on its single connection, and it finishes each statement (`all`, `run`,
 * or an `iterate` read to the end or closed) before the next, so one statement object per SQL text
 * is never in use twice at once. A migration that changes the schema makes SQLite re-prepare a
 * cached statement by itself.
 */
export function withStatementCache(sqlite: Database.Database, size = STATEMENT_CACHE_SIZE): Database.Database {
  const cache = new Map<string, Database.Statement>();
  const prepare = sqlite.prepare.bind(sqlite);
  return new Proxy(sqlite, {
    get(target, prop, receiver) {
      if (prop !== 'prepare') return Reflect.get(target, prop, receiver) as unknown;
      return (source: string) => {
        let stmt = cache.get(source);
        if (stmt) return stmt;
        stmt = prepare(source);
        // Bounded: the oldest text goes first (an IN list of n ids is a new text for each n).
        if (cache.size >= size) cache.delete(cache.keys().next().value!);
        cache.set(source, stmt);
        return stmt;
      };
    },
  });
}

/**
 * Applies pending migrations. Each runs in a transaction (DDL is transactional on both engines).
 * PostgreSQL serialises concurrent migrators with an advisory lock (its CREATE IF NOT EXISTS of the
 * migration tables can still race once); SQLite has no lock across
 * processes, so when the API and the worker open a new file at once one of them fails (its table
 * already exists): that attempt rolled back whole, and a retry finds the migrations applied.
 */
async function migrate(db: Kysely<LedgerDatabase>, dialect: LedgerDialect): Promise<Error | undefined> {
  const attempts = dialect === 'sqlite' ? 20 : 3;
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
    if (!error) return undefined;
    if (attempt < attempts) {
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      continue;
    }
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    return new Error(`ledger migration ${failed ?? ''} failed: ${(error as Error).message ?? String(error)}`, {
      cause: error,
    });
  }
}
