// A throwaway PostgreSQL 15 cluster for tests and scripts: initdb in a temporary folder, the
// postmaster in the foreground on a free port of 127.0.0.1 (unix socket inside the data folder),
// fsync off, trust authentication, superuser `postgres`. Stopped (and its folder removed) when
// this process exits, and by the kernel if this process dies by SIGKILL.
//
//   const pg = await startPostgres();
//   await pg.createDatabase('ledger_a');
//   process.env.LEDGER_DATABASE_URL = pg.url('ledger_a');
//   await pg.restart({ mode: 'fast' });   // same folder, same port
//   await pg.stop();
//
// Binaries: PG_BIN_DIR, else /usr/lib/postgresql/15/bin, else whatever `initdb` is on PATH.
// PostgreSQL refuses to run as root: as root, the server runs as the system user `postgres`
// (created with useradd when missing). The postmaster runs in the foreground (not `pg_ctl start`,
// which daemonizes) so its pid is ours to signal and `setpriv --pdeathsig` can tie it to us.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { delay, describeExit, spawnChild, type ManagedChild } from './children';
import { freePort } from './ports';

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

export interface PostgresOptions {
  /** Data folder; created and initialised when it has no PG_VERSION. Default: a new temp folder (removed on stop). */
  dataDir?: string;
  /** TCP port on 127.0.0.1. Default: a free one (retried if someone takes it first). */
  port?: number;
  /** Extra `-c name=value` server settings, e.g. { max_connections: '200' }. */
  settings?: Record<string, string>;
  /** Every server log line (default: kept for error messages only). */
  onLine?: (line: string) => void;
}

export interface PostgresCluster {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Superuser name (no password: trust authentication, 127.0.0.1 and the socket only). */
  readonly user: string;
  /** `postgres://postgres@127.0.0.1:<port>/<dbName>` (default database: postgres). */
  url(dbName?: string): string;
  /** CREATE DATABASE (a plain identifier: letters, digits, underscores). */
  createDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /** Postmaster pid while running, else undefined. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Shuts down (`fast` by default: clients are disconnected, no recovery needed on restart). */
  stop(options?: { mode?: ShutdownMode; keepData?: boolean }): Promise<void>;
  /** Shuts down and starts again on the same folder and port. `immediate` means crash recovery on start. */
  restart(options?: { mode?: ShutdownMode }): Promise<void>;
  /** SIGKILL to the postmaster: what a crashed database host looks like. Start again with start(). */
  kill9(): Promise<void>;
  /** Starts a stopped cluster again (same folder and port). */
  start(): Promise<void>;
}

const HOST = '127.0.0.1';
const SUPERUSER = 'postgres';
const SYSTEM_USER = 'postgres';
const READY = 'database system is ready to accept connections';
const START_TIMEOUT_MS = 60_000;
const SIGNAL: Record<ShutdownMode, NodeJS.Signals> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };

/** The folder holding initdb and postgres. */
export function postgresBinDir(): string {
  const candidates = [process.env.PG_BIN_DIR, '/usr/lib/postgresql/15/bin'].filter(Boolean) as string[];
  for (const dir of candidates) {
    if (existsSync(path.join(dir, 'postgres')) && existsSync(path.join(dir, 'initdb'))) return dir;
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const initdb = which.status === 0 ? which.stdout.trim() : '';
  if (initdb) return path.dirname(initdb);
  throw new Error(
    'PostgreSQL 15 binaries not found: install the postgresql package (Debian: apt-get install postgresql) ' +
      'or set PG_BIN_DIR to the folder holding initdb and postgres',
  );
}

/** True when the binaries are there (for suites that want to say why they skip). */
export function postgresAvailable(): boolean {
  try {
    postgresBinDir();
    return true;
  } catch {
    return false;
  }
}

interface RunAs {
  uid: number;
  gid: number;
  /** Prefix that runs a command as that user (empty when we are not root). */
  wrap(command: string, args: string[]): [string, string[]];
}

let runAsCache: RunAs | undefined;
/** As root: the unprivileged system user the server runs as (created if missing). */
function runAs(): RunAs {
  if (runAsCache) return runAsCache;
  if (process.getuid?.() !== 0) {
    runAsCache = { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, wrap: (c, a) => [c, a] };
    return runAsCache;
  }
  let ids = lookupUser(SYSTEM_USER);
  if (!ids) {
    // Two processes may race here; whoever loses finds the user the other created.
    spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', SYSTEM_USER], {
      stdio: 'ignore',
    });
    ids = lookupUser(SYSTEM_USER);
    if (!ids) throw new Error(`running as root and could not create the system user ${SYSTEM_USER} (useradd)`);
  }
  const { uid, gid } = ids;
  runAsCache = {
    uid,
    gid,
    // setpriv execs (the pid stays the server's own) and sets the parent-death signal after the
    // user change, which would otherwise clear it.
    wrap: (command, args) => [
      '/usr/bin/setpriv',
      [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--pdeathsig', 'TERM', '--', command, ...args],
    ],
  };
  return runAsCache;
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const res = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (res.status !== 0) return undefined;
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { uid: Number(res.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function initdb(bin: string, dataDir: string, user: RunAs): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) chownSync(dataDir, user.uid, user.gid);
  const [command, args] = user.wrap(path.join(bin, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    SUPERUSER,
    '--auth=trust',
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  try {
    execFileSync(command, args, { stdio: 'pipe', encoding: 'utf8' });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`initdb failed: ${e.stderr || e.stdout || e.message}`, { cause: err });
  }
  // Keep the server quiet and fast; the socket lives in the data folder (no /var/run needed).
  writeFileSync(
    path.join(dataDir, 'postgresql.auto.conf'),
    [
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      `unix_socket_directories = '${dataDir}'`,
      `listen_addresses = '${HOST}'`,
      "log_line_prefix = '%m [%p] '",
      '',
    ].join('\n'),
    { flag: 'a' },
  );
}

/** Clusters to take down when this process exits. */
const clusters = new Set<Cluster>();

class Cluster implements PostgresCluster {
  readonly host = HOST;
  readonly user = SUPERUSER;
  private child: ManagedChild | undefined;
  private removed = false;

  constructor(
    private readonly bin: string,
    readonly dataDir: string,
    readonly port: number,
    private readonly temporary: boolean,
    private readonly options: PostgresOptions,
  ) {}

  get pid(): number | undefined {
    return this.child?.running ? this.child.pid : undefined;
  }

  get running(): boolean {
    return this.child?.running ?? false;
  }

  url(dbName = 'postgres'): string {
    return `postgres://${SUPERUSER}@${HOST}:${this.port}/${encodeURIComponent(dbName)}`;
  }

  async start(): Promise<void> {
    if (this.running) return;
    // After kill9() the old backends take a moment to notice and exit; until then the server
    // refuses to start on the same folder ("pre-existing shared memory block is still in use").
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        return await this.startOnce();
      } catch (err) {
        if (Date.now() > deadline || !/pre-existing shared memory|lock file .* already exists/i.test(String(err)))
          throw err;
        await delay(250);
      }
    }
  }

  private async startOnce(): Promise<void> {
    const args = ['-D', this.dataDir, '-p', String(this.port), '-h', HOST, '-k', this.dataDir];
    for (const [name, value] of Object.entries(this.options.settings ?? {})) args.push('-c', `${name}=${value}`);
    const [command, wrapped] = runAs().wrap(path.join(this.bin, 'postgres'), args);
    const child = spawnChild({
      name: `postgres:${this.port}`,
      command,
      args: wrapped,
      onLine: this.options.onLine && ((line) => this.options.onLine!(line)),
    });
    this.child = child;
    try {
      await child.waitForLine(READY, START_TIMEOUT_MS);
    } catch (err) {
      await child.stop('SIGQUIT', 2_000);
      throw err;
    }
  }

  async stop(options: { mode?: ShutdownMode; keepData?: boolean } = {}): Promise<void> {
    const child = this.child;
    if (child?.running) {
      const info = await child.stop(SIGNAL[options.mode ?? 'fast'], 30_000);
      if (info.signal === 'SIGKILL') {
        throw new Error(`postgres:${this.port} did not shut down within 30 s (${describeExit(info)})\n${child.tail()}`);
      }
    }
    if (!options.keepData) {
      clusters.delete(this);
      this.removeData();
    }
  }

  async restart(options: { mode?: ShutdownMode } = {}): Promise<void> {
    await this.stop({ mode: options.mode ?? 'fast', keepData: true });
    await this.start();
  }

  async kill9(): Promise<void> {
    await this.child?.kill9();
  }

  async createDatabase(name: string): Promise<string> {
    await this.admin(`CREATE DATABASE ${identifier(name)}`);
    return this.url(name);
  }

  async dropDatabase(name: string): Promise<void> {
    await this.admin(`DROP DATABASE IF EXISTS ${identifier(name)} WITH (FORCE)`);
  }

  /** Synchronous last resort for process exit: immediate shutdown, folder removed. */
  exitNow(): void {
    if (this.child?.running) {
      try {
        process.kill(this.child.pid, 'SIGQUIT');
      } catch {
        // Already gone.
      }
    }
    this.removeData();
  }

  private removeData(): void {
    if (!this.temporary || this.removed) return;
    this.removed = true;
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async admin(statement: string): Promise<void> {
    const client = new pg.Client({ connectionString: this.url('postgres') });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  }
}

function identifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`database name ${JSON.stringify(name)}: use letters, digits and underscores`);
  }
  return `"${name}"`;
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Runs before children.ts's SIGKILL hook (installed on first spawn, after this one): SIGQUIT
  // lets the postmaster take its backends down with it.
  process.on('exit', () => {
    for (const cluster of clusters) cluster.exitNow();
  });
}

/** Starts a throwaway cluster (see the top of this file). */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  installExitHook();
  const bin = postgresBinDir();
  const user = runAs();
  const temporary = !options.dataDir;
  // A short path: the socket path (folder + /.s.PGSQL.<port>) must stay under 107 bytes.
  const dataDir = options.dataDir ? path.resolve(options.dataDir) : mkdtempSync(path.join(os.tmpdir(), 'pg-'));
  if (temporary && process.getuid?.() === 0) chownSync(dataDir, user.uid, user.gid);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) initdb(bin, dataDir, user);

  const attempts = options.port ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    const cluster = new Cluster(bin, dataDir, options.port ?? (await freePort(HOST)), temporary, options);
    clusters.add(cluster);
    try {
      await cluster.start();
      return cluster;
    } catch (err) {
      clusters.delete(cluster);
      // Someone bound the free port between our check and the server's bind: pick another.
      if (attempt < attempts && /could not (bind|create listen socket)|already in use/i.test(String(err))) continue;
      if (temporary) rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }
}
