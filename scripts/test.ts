// `npm test`: one Temporal dev server and ONE mocha process for every suite, in the order
// unit → workflow → e2e → browser → anything else under test/, so fast failures come first.
//   npm test -- --grep sandbox          extra arguments go to mocha
//   npm test -- test/unit/x.test.ts     spec paths replace the default list
//   npm test -- --chaos                 test/chaos only (process kills, restarts)
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config } from '../config';
import { ensureTemporalCli, startDevServer, type DevServer } from './temporal-cli';

const root = config().root;
const testDir = path.join(root, 'test');
const ORDER = ['unit', 'store', 'machines', 'sandbox', 'workflow', 'api', 'e2e', 'browser'];
/** A Rust panic in the output fails the run (otherwise: a loud warning). */
const FAIL_ON_PANIC = true;
const SERVER_LOG = path.join(root, 'test-artifacts', 'temporal-dev-server.log');

/** Mocha options that take a value, so `--grep sandbox` is not mistaken for the spec `sandbox/`. */
const VALUE_OPTIONS = new Set([
  '--grep',
  '-g',
  '--fgrep',
  '-f',
  '--timeout',
  '-t',
  '--slow',
  '-s',
  '--reporter',
  '-R',
  '--reporter-option',
  '--reporter-options',
  '-O',
  '--retries',
  '--ignore',
  '--exclude',
  '--require',
  '-r',
  '--ui',
  '-u',
  '--file',
  '--spec',
  '--config',
  '--package',
  '--extension',
  '--jobs',
  '-j',
  '--global',
  '--node-option',
  '-n',
]);

function log(message: string): void {
  process.stdout.write(`[test] ${message}\n`);
}

function testFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.test.ts'))
    .map((file) => path.join(dir, file))
    .sort();
}

/** Every spec under test/ except chaos and cluster, suites in ORDER first. */
function defaultSpecs(): string[] {
  const ordered = ORDER.flatMap((suite) => testFilesUnder(path.join(testDir, suite)));
  const chaos = path.join(testDir, 'chaos') + path.sep;
  const cluster = path.join(testDir, 'cluster') + path.sep; // npm run test:cluster (its own cluster)
  const rest = testFilesUnder(testDir).filter(
    (file) => !ordered.includes(file) && !file.startsWith(chaos) && !file.startsWith(cluster),
  );
  return [...ordered, ...rest];
}

/** Splits our arguments into mocha options and explicit spec paths. */
function parseArgs(argv: string[]): { chaos: boolean; mochaArgs: string[]; specs: string[] } {
  const mochaArgs: string[] = [];
  const specs: string[] = [];
  let chaos = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--chaos') chaos = true;
    else if (VALUE_OPTIONS.has(arg) && i + 1 < argv.length) mochaArgs.push(arg, argv[++i]);
    else if (!arg.startsWith('-') && existsSync(arg)) specs.push(arg);
    else mochaArgs.push(arg);
  }
  return { chaos, mochaArgs, specs };
}

function needsTemporal(specs: string[]): boolean {
  const unit = path.join(testDir, 'unit') + path.sep;
  return specs.some((spec) => !path.resolve(spec).startsWith(unit));
}

async function main(): Promise<number> {
  const { chaos, mochaArgs, specs: explicit } = parseArgs(process.argv.slice(2));
  let specs = explicit;
  if (chaos) {
    specs = testFilesUnder(path.join(testDir, 'chaos'));
    if (specs.length === 0) {
      log('no chaos tests yet (test/chaos/**/*.test.ts)');
      return 1;
    }
  } else if (specs.length === 0) {
    specs = defaultSpecs();
  }

  const env: NodeJS.ProcessEnv = { ...process.env };
  let server: DevServer | undefined;
  const { temporal } = config();
  if (temporal.address) {
    log(`using the Temporal server at ${temporal.address} (TEMPORAL_ADDRESS)`);
  } else if (needsTemporal(specs)) {
    const cliPath = await ensureTemporalCli((message) => log(message));
    rmSync(SERVER_LOG, { force: true });
    server = await startDevServer({
      cliPath,
      headless: true,
      inMemory: true,
      namespace: temporal.namespace,
      logFile: SERVER_LOG,
    });
    log(
      `Temporal dev server at ${server.address}, ready in ${server.startupMs} ms (log: ${path.relative(root, SERVER_LOG)})`,
    );
    // The mocha global fixture sees TEMPORAL_ADDRESS and reuses this server.
    env.TEMPORAL_ADDRESS = server.address;
    env.TEMPORAL_NAMESPACE = server.namespace;
  }

  const mocha = spawn(
    process.execPath,
    [
      require.resolve('mocha/bin/mocha.js'),
      // Piped (to be watched), so keep colours when our own output is a terminal.
      ...(process.stdout.isTTY && !mochaArgs.some((a) => /^--(no-)?colou?rs?$/.test(a)) ? ['--color'] : []),
      ...mochaArgs,
      ...specs,
    ],
    {
      cwd: root,
      env,
      stdio: ['inherit', 'pipe', 'pipe'],
    },
  );
  // Mocha's output passes through unchanged, watched for a Rust panic of the SDK core: a panic is
  // never normal output (issue 11, test/model/PANIC.md), so it fails the run.
  const [outPanics, errPanics] = [watchForPanics(), watchForPanics()];
  mocha.stdout.on('data', (chunk: Buffer) => process.stdout.write(outPanics.feed(chunk)));
  mocha.stderr.on('data', (chunk: Buffer) => process.stderr.write(errPanics.feed(chunk)));
  // Ctrl-C in a terminal already reaches mocha (same process group); a CI cancel (SIGTERM to us
  // only) does not, so pass signals on and let mocha finish its teardown.
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      interrupted = signal;
      mocha.kill(signal);
    });
  }
  const code = await new Promise<number>((resolve) => {
    mocha.once('error', (err) => {
      log(`could not start mocha: ${err.message}`);
      resolve(1);
    });
    mocha.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
  });
  await server?.stop();
  const panics = outPanics.count + errPanics.count;
  if (panics > 0) {
    log(
      `${'!'.repeat(72)}\n[test] the output contains ${panics} Rust panic(s) ("panicked at"): see test/model/PANIC.md`,
    );
    // Fails the run once the workflow's avoidance (localRetryThreshold 0) is on main.
    if (code === 0 && FAIL_ON_PANIC) return 1;
  }
  return interrupted ? 128 + os.constants.signals[interrupted] : code;
}

/** Counts "panicked at" in a byte stream, also when a chunk boundary splits it. */
function watchForPanics(): { feed(chunk: Buffer): Buffer; readonly count: number } {
  const needle = 'panicked at';
  let tail = '';
  let count = 0;
  return {
    feed(chunk) {
      const text = tail + chunk.toString('latin1');
      for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++;
      tail = text.slice(-(needle.length - 1));
      return chunk;
    },
    get count() {
      return count;
    },
  };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[test] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
