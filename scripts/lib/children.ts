// Child processes for the dev/test tooling: spawn, read output line by line, wait for a line,
// stop gracefully (SIGTERM, then SIGKILL) and never leave one running after this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

export interface ChildOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Own process group: a terminal Ctrl-C then reaches only the supervisor, which can stop the
   * children in order. Without it, Ctrl-C hits every child at once (simplest for tests).
   */
  detached?: boolean;
  /** Every output line (stdout and stderr), e.g. to prefix it or append it to a log file. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

type LineWaiter = { pattern: string | RegExp; resolve: (line: string) => void };

const TAIL_LINES = 60;

/** Children still running; killed with SIGKILL if this process exits without stopping them. */
const live = new Set<ManagedChild>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: kill(), no waiting. Covers normal exit, process.exit()
  // and uncaught exceptions. Our own death by SIGKILL runs no handler: that case is covered by
  // withParentDeathSignal() below (Linux only; elsewhere such orphans must be killed by hand).
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.process.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

let signalHookInstalled = false;
/**
 * For processes without their own shutdown logic (mocha): on SIGINT/SIGTERM/SIGHUP exit at once,
 * which runs the 'exit' hook above. Without this, death by signal would skip that hook and leave
 * e.g. the Temporal dev server running.
 */
export function exitOnSignals(): void {
  if (signalHookInstalled) return;
  signalHookInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
  }
}

function matches(line: string, pattern: string | RegExp): boolean {
  return typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
}

export class ManagedChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves (never rejects) when the process has exited or failed to start. */
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private readonly recent: string[] = [];
  private readonly waiters = new Set<LineWaiter>();

  constructor(options: ChildOptions) {
    installExitHook();
    this.name = options.name;
    const [command, args] = withParentDeathSignal(options.command, options.args);
    this.process = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: options.detached ?? false,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this);

    const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
      this.recent.push(line);
      if (this.recent.length > TAIL_LINES) this.recent.shift();
      options.onLine?.(line, stream);
      for (const waiter of this.waiters) {
        if (matches(line, waiter.pattern)) {
          this.waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    };
    const stdoutDone = new Promise((resolve) =>
      readline.createInterface({ input: this.process.stdout! }).on('line', onLine('stdout')).on('close', resolve),
    );
    const stderrDone = new Promise((resolve) =>
      readline.createInterface({ input: this.process.stderr! }).on('line', onLine('stderr')).on('close', resolve),
    );

    this.exited = new Promise<ExitInfo>((resolve) => {
      this.process.once('error', (error) => {
        // Spawn failures emit 'error' and possibly no 'exit'.
        if (this.process.pid === undefined) resolve({ code: null, signal: null, error });
      });
      this.process.once('exit', (code, signal) => {
        // Let the last lines (often the reason it died) reach onLine and tail() first.
        void Promise.race([Promise.all([stdoutDone, stderrDone]), delay(500)]).then(() => resolve({ code, signal }));
      });
    }).then((info) => {
      this.exitInfo = info;
      live.delete(this);
      return info;
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last output lines, for error messages ("it died, and here is why"). */
  tail(lines = 30): string {
    return this.recent.slice(-lines).join('\n');
  }

  /** The first output line matching `pattern`; rejects if the process exits or time runs out. */
  async waitForLine(pattern: string | RegExp, timeoutMs: number): Promise<string> {
    const seen = this.recent.find((line) => matches(line, pattern));
    if (seen !== undefined) return seen;
    let waiter: LineWaiter | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<string>((resolve) => {
          waiter = { pattern, resolve };
          this.waiters.add(waiter);
        }),
        this.exited.then((info) => {
          throw new Error(`${this.name} exited (${describeExit(info)}) before printing ${pattern}\n${this.tail()}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms\n${this.tail()}`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      if (waiter) this.waiters.delete(waiter);
      clearTimeout(timer);
    }
  }

  /** `signal` (SIGTERM by default), then SIGKILL if it is still running after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo!;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Immediate, ungraceful death: what a crash or an OOM kill looks like to the rest. */
  async kill9(): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo!;
    this.signal('SIGKILL');
    return this.exited;
  }

  private signal(signal: NodeJS.Signals): void {
    try {
      this.process.kill(signal);
    } catch {
      // Exited in the meantime.
    }
  }
}

const SETPRIV = '/usr/bin/setpriv';
let hasSetpriv: boolean | undefined;
/**
 * On Linux, run the child under `setpriv --pdeathsig TERM` (util-linux; it execs, so the pid is
 * the child's own): the kernel sends it SIGTERM if we die, even by SIGKILL, where no 'exit' hook
 * runs, so no Temporal server or service outlives a killed test run or `npm start`.
 */
function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  hasSetpriv ??= process.platform === 'linux' && existsSync(SETPRIV);
  return hasSetpriv ? [SETPRIV, ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, args];
}

export function spawnChild(options: ChildOptions): ManagedChild {
  return new ManagedChild(options);
}

/** Command and arguments that run a TypeScript entry point with tsx, as a direct child. */
export function tsxCommand(script: string, args: string[] = []): { command: string; args: string[] } {
  // `node --import tsx` rather than the tsx CLI: the CLI is an extra process in between, so the pid
  // we signal (and SIGKILL in chaos tests) would not be the service itself.
  return {
    command: process.execPath,
    // Only tsx: Temporal's workflow threads inherit these flags, and a .ts preload fails there.
    // An absolute URL, so the child's working directory does not matter.
    args: ['--import', pathToFileURL(require.resolve('tsx')).href, script, ...args],
  };
}

export function describeExit(info: ExitInfo): string {
  if (info.error) return `failed to start: ${info.error.message}`;
  return info.signal ? `signal ${info.signal}` : `code ${info.code}`;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
