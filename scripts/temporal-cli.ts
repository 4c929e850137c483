// Finds, or builds once, the pinned Temporal CLI (the dev server and Web UI come with it), and is
// a small command line of its own:
//   npm run temporal -- path          print the binary's path (building it if needed)
//   npm run temporal -- dev           run a dev server in the foreground (config ports, SQLite file)
//   npm run temporal -- <anything>    run that temporal command, e.g. `workflow list`
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { config } from '../config';
import { startDevServer } from './lib/dev-server';
import { checkGo, goInstall, run, type Progress } from './lib/go-install';

export { startDevServer, SEARCH_ATTRIBUTES, type DevServer, type DevServerOptions } from './lib/dev-server';

/** The last tag `go install pkg@version` accepts: later ones have a `replace` directive. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
/** What that build's `temporal --version` contains (`go install` builds say CLI 0.0.0-DEV). */
export const EXPECTED_SERVER_VERSION = 'Server 1.29';
const MIN_GO = [1, 25] as const;
const GO_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
const EXE = process.platform === 'win32' ? 'temporal.exe' : 'temporal';

export type { Progress };
const printProgress: Progress = (message) => process.stderr.write(`[temporal-cli] ${message}\n`);

/** Where this project's own build goes: GOBIN for `go install`. */
export function cliCacheDir(): string {
  return path.join(config().temporal.cliCacheDir, `temporal-${TEMPORAL_CLI_VERSION}`);
}

/**
 * Why `bin` is not the Temporal CLI this project is pinned to, or undefined if it is. A different
 * server version can behave differently from what the tests were written against.
 */
async function notPinnedReason(bin: string): Promise<string | undefined> {
  const { ok, output } = await run(bin, ['--version']);
  if (!ok) return `\`${bin} --version\` failed: ${output.split('\n')[0] ?? ''}`;
  if (!output.includes(EXPECTED_SERVER_VERSION)) {
    return `${bin} reports "${output}", this project needs ${EXPECTED_SERVER_VERSION}.x (Temporal CLI ${TEMPORAL_CLI_VERSION})`;
  }
  return undefined;
}

/** `temporal` on PATH, like `command -v` (PATH is the OS's lookup, not project configuration). */
function onPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = dir && path.join(dir, EXE);
    if (candidate && existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function goBinDir(): Promise<string | undefined> {
  const { ok, output } = await run('go', ['env', 'GOPATH']);
  const first = output.split(path.delimiter)[0];
  return ok && first ? path.join(first, 'bin') : undefined;
}

/** The pinned CLI if it is already somewhere we look, else undefined. Never builds. */
export async function findTemporalCli(progress: Progress = printProgress): Promise<string | undefined> {
  const explicit = config().temporal.cliPath;
  if (explicit) {
    // An explicit choice that does not work is an error, not something to silently route around.
    if (!existsSync(explicit)) throw new Error(`TEMPORAL_CLI_PATH=${explicit} does not exist`);
    const reason = await notPinnedReason(explicit);
    if (reason) throw new Error(`TEMPORAL_CLI_PATH: ${reason}`);
    return explicit;
  }
  const goBin = await goBinDir();
  const candidates: Array<[string | undefined, string]> = [
    [onPath(), 'PATH'],
    [goBin && path.join(goBin, EXE), '$(go env GOPATH)/bin'],
    [path.join(cliCacheDir(), EXE), 'project cache'],
  ];
  const tried = new Set<string>();
  for (const [candidate, source] of candidates) {
    if (!candidate || !existsSync(candidate)) continue;
    const real = realpathSync(candidate);
    if (tried.has(real)) continue;
    tried.add(real);
    const reason = await notPinnedReason(candidate);
    if (!reason) return candidate;
    progress(`ignoring the temporal found via ${source}: ${reason}; set TEMPORAL_CLI_PATH to choose one explicitly`);
  }
  return undefined;
}

let ensured: Promise<string> | undefined;
/** The pinned CLI's path, building it on first use (once per machine, ~3 minutes). */
export function ensureTemporalCli(progress: Progress = printProgress): Promise<string> {
  ensured ??= (async () => (await findTemporalCli(progress)) ?? (await buildTemporalCli(progress)))();
  // A failure should not stick: the user may install Go and retry in the same process (watch mode).
  ensured.catch(() => (ensured = undefined));
  return ensured;
}

/** Builds the pinned CLI into cliCacheDir() with `go install`. */
export async function buildTemporalCli(progress: Progress = printProgress): Promise<string> {
  await checkGo(MIN_GO, 'the Temporal CLI', 'TEMPORAL_CLI_PATH');
  progress(`building the Temporal CLI ${TEMPORAL_CLI_VERSION} once, this takes ~3 minutes`);
  const bin = await goInstall({
    pkg: GO_PACKAGE,
    version: TEMPORAL_CLI_VERSION,
    gobin: cliCacheDir(),
    exe: EXE,
    progress,
  });
  const reason = await notPinnedReason(bin);
  if (reason) throw new Error(`the freshly built CLI is not the expected one: ${reason}`);
  return bin;
}

/** `npm run temporal -- dev`: a persistent dev server on the configured ports, until Ctrl-C. */
async function runDevServerInForeground(): Promise<void> {
  const { temporal } = config();
  const cliPath = await ensureTemporalCli();
  const server = await startDevServer({
    cliPath,
    port: temporal.devPort,
    uiPort: temporal.uiPort,
    dbFile: temporal.dbFile,
    onLine: (line) => process.stdout.write(`[temporal] ${line}\n`),
    // Ctrl-C reaches only us; we stop the server and wait for it.
    detached: true,
  });
  process.stdout.write(
    `Temporal dev server ready in ${server.startupMs} ms\n  gRPC    ${server.address}\n  Web UI  ${temporal.uiUrl}\n  SQLite  ${temporal.dbFile}\nCtrl-C to stop.\n`,
  );
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void server.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('SIGHUP', shutdown);
  const exit = await server.child.exited;
  if (!stopping) {
    process.stderr.write(`the Temporal dev server exited unexpectedly (code ${exit.code}, signal ${exit.signal})\n`);
    process.exit(1);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  if (command === 'path') {
    process.stdout.write(`${await ensureTemporalCli()}\n`);
  } else if (command === 'dev') {
    await runDevServerInForeground();
  } else if (command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(
      'usage: npm run temporal -- path | dev | <temporal command...>\n' +
        '  path   print the pinned Temporal CLI binary (building it once if needed)\n' +
        '  dev    run a dev server in the foreground (TEMPORAL_PORT, TEMPORAL_UI_PORT, TEMPORAL_DB_FILE)\n' +
        '  other  passed to the CLI, e.g. `npm run temporal -- workflow list`\n',
    );
  } else {
    const cliPath = await ensureTemporalCli();
    const child = spawn(cliPath, argv, { stdio: 'inherit' });
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
