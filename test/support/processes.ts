// Service processes (sandbox, API, worker) for end-to-end and chaos tests: start one the way
// production does (its own Node process, run with tsx), wait until it is ready, then stop it,
// SIGKILL it or restart it. Children never outlive the test process (see scripts/lib/children.ts).
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { config } from '../../config';
import { exitOnSignals, spawnChild, tsxCommand, type ExitInfo, type ManagedChild } from '../../scripts/lib/children';
import { waitForHttpOk } from '../../scripts/lib/wait';

export { freePort, freePorts } from '../../scripts/lib/ports';
export type { ExitInfo };

export interface ServiceOptions {
  /** Used in errors and for the default log file name. */
  name: string;
  /** Entry point relative to the repository root, e.g. 'sandbox/main.ts'. */
  script: string;
  args?: string[];
  /** Added to this process's environment (which already has TEMPORAL_ADDRESS); undefined removes one. */
  env?: Record<string, string | undefined>;
  /** Ready once GET answers 200, e.g. `http://127.0.0.1:${port}/healthz`. */
  readyUrl?: string;
  /** Ready once an output line contains this, e.g. 'worker started'. */
  readyLine?: string | RegExp;
  /** Output is appended here; default test-artifacts/<name>.log. */
  logFile?: string;
  /** Default 30 s. */
  readyTimeoutMs?: number;
}

export interface Service {
  readonly name: string;
  /** Origin of readyUrl, e.g. http://127.0.0.1:8701 (undefined without readyUrl). */
  readonly url: string | undefined;
  /** The current process (changes on restart). */
  readonly pid: number;
  readonly running: boolean;
  readonly logFile: string;
  /** `signal` (default SIGTERM), then SIGKILL after 5 s; resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Immediate SIGKILL: a crash, as far as everyone else can tell. */
  kill9(): Promise<ExitInfo>;
  /** Stops it if still running, starts it again with the same options, waits until ready. */
  restart(): Promise<void>;
  /** The last output lines, for assertion messages. */
  tail(lines?: number): string;
  /** The first output line (since start, or the next one) matching `pattern`. */
  waitForLine(pattern: string | RegExp, timeoutMs?: number): Promise<string>;
}

const running = new Set<Service>();

/** Starts `options.script` and resolves once it is ready; rejects with its last output if not. */
export async function spawnService(options: ServiceOptions): Promise<Service> {
  const logFile = options.logFile ?? path.join(config().root, 'test-artifacts', `${options.name}.log`);
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  let child: ManagedChild = await start(options, log);

  const service: Service = {
    name: options.name,
    url: options.readyUrl ? new URL(options.readyUrl).origin : undefined,
    get pid() {
      return child.pid;
    },
    get running() {
      return child.running;
    },
    logFile,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const info = await child.stop(signal, 5_000);
      running.delete(service);
      return info;
    },
    async kill9() {
      return child.kill9();
    },
    async restart() {
      await child.stop('SIGTERM', 5_000);
      log.write(`--- ${new Date().toISOString()} restarting ${options.name}\n`);
      child = await start(options, log);
      running.add(service);
    },
    tail: (lines) => child.tail(lines),
    waitForLine: (pattern, timeoutMs = 10_000) => child.waitForLine(pattern, timeoutMs),
  };
  running.add(service);
  return service;
}

/** Stops every service still running (the global teardown calls this). */
export async function stopAllServices(): Promise<void> {
  await Promise.allSettled([...running].map((s) => s.stop()));
}

async function start(options: ServiceOptions, log: WriteStream): Promise<ManagedChild> {
  const root = config().root;
  const { command, args } = tsxCommand(path.resolve(root, options.script), options.args);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  log.write(`--- ${new Date().toISOString()} starting ${options.script}\n`);
  exitOnSignals();
  const child = spawnChild({
    name: options.name,
    command,
    args,
    env,
    cwd: root,
    onLine: (line) => log.write(`${line}\n`),
  });
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  try {
    await Promise.all([
      options.readyUrl ? waitForHttpOk(options.readyUrl, { timeoutMs, child }) : undefined,
      options.readyLine ? child.waitForLine(options.readyLine, timeoutMs) : undefined,
    ]);
  } catch (err) {
    await child.stop('SIGKILL');
    if (err instanceof Error) err.message += `\n(full output: ${path.relative(root, logFile(log))})`;
    throw err;
  }
  return child;
}

function logFile(log: WriteStream): string {
  return String(log.path);
}
