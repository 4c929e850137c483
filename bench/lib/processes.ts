// Service processes for benchmarks: each service the way production runs it (its own Node process
// with tsx), its output going straight to a log file (no pipe through the benchmark process, which
// shares the CPUs), optionally under `node --cpu-prof`, with /proc readings of CPU time and memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { config } from '../../config';
import { sleep } from './common';

const live = new Set<ChildProcess>();
let exitHook = false;
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => process.exit(130));
}

export interface BenchProcessOptions {
  name: string;
  /** Entry point relative to the repository root, or an absolute executable with `executable`. */
  script?: string;
  executable?: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  logFile: string;
  /** Write V8 CPU profiles (main thread and worker threads) into this directory (its own) on exit. */
  cpuProfileDir?: string;
}

export interface BenchProcess {
  name: string;
  pid: number;
  logFile: string;
  readonly running: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (graceful: a CPU profile is written), SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
  /** Output so far (the log file), for readiness checks and error messages. */
  output(): string;
  tail(lines?: number): string;
}

export function startProcess(options: BenchProcessOptions): BenchProcess {
  installExitHook();
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, 'a');
  const nodeFlags: string[] = [];
  if (options.cpuProfileDir) {
    mkdirSync(options.cpuProfileDir, { recursive: true });
    // Node's default names (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile): one per thread.
    nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
  }
  const [command, baseArgs] = options.executable
    ? [options.executable, options.args ?? []]
    : [
        process.execPath,
        [
          ...nodeFlags,
          '--import',
          pathToFileURL(require.resolve('tsx')).href,
          path.resolve(config().root, options.script!),
          ...(options.args ?? []),
        ],
      ];
  // setpriv --pdeathsig: the kernel stops the child if this process dies, even by SIGKILL.
  const setpriv = process.platform === 'linux' && existsSync('/usr/bin/setpriv');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child = spawn(
    setpriv ? '/usr/bin/setpriv' : command,
    setpriv ? ['--pdeathsig', 'TERM', '--', command, ...baseArgs] : baseArgs,
    {
      cwd: config().root,
      env,
      stdio: ['ignore', fd, fd],
    },
  );
  closeSync(fd);
  live.add(child);
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', () => {
      running = false;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  const output = () => {
    try {
      return readFileSync(options.logFile, 'utf8');
    } catch {
      return '';
    }
  };
  return {
    name: options.name,
    pid: child.pid ?? -1,
    logFile: options.logFile,
    get running() {
      return running;
    },
    exited,
    output,
    tail: (lines = 30) =>
      output()
        .split('\n')
        .slice(-lines - 1)
        .join('\n'),
    async stop(graceMs = 15_000) {
      if (!running) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it returns true; fails with the process's last output if it dies or time runs out. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  proc?: BenchProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    if (proc && !proc.running) throw new Error(`${proc.name} exited while waiting for ${what}\n${proc.tail()}`);
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not ready after ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}${proc ? `\n${proc.tail()}` : ''}`,
      );
    }
    await sleep(100);
  }
}

export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return res.status === 200;
}

// ---- /proc readings ----------------------------------------------------------------------------

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** The process's user+system CPU time in ms (its threads included), or NaN off Linux. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] = utime, fields[12] = stime (fields 14 and 15 of proc(5), counted after the name)
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

export interface Memory {
  /** VmRSS, MiB */
  rssMiB: number;
  /** VmHWM: the peak RSS so far, MiB */
  peakMiB: number;
}

export function memory(pid: number): Memory {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: Math.round(kib('VmRSS') / 102.4) / 10, peakMiB: Math.round(kib('VmHWM') / 102.4) / 10 };
  } catch {
    return { rssMiB: NaN, peakMiB: NaN };
  }
}

/** Busy CPU ms of the whole machine (all cores, /proc/stat), or NaN off Linux. */
export function machineBusyMs(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return ((user + nice + system + irq + softirq + steal) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** CPU time of several processes between two points in time, and what the rest of the machine used meanwhile. */
export class CpuMeter {
  #start = new Map<string, number>();
  #t0 = 0;
  #machine0 = 0;
  constructor(private readonly pids: Record<string, number>) {}

  start(): void {
    this.#t0 = performance.now();
    this.#machine0 = machineBusyMs();
    for (const [name, pid] of Object.entries(this.pids)) this.#start.set(name, cpuMs(pid));
  }

  /**
   * CPU ms used by each process since start(), the wall time, and `otherMs`: busy CPU of everything
   * else on the machine (other people's test runs skew a benchmark: this says by how much).
   */
  read(): { wallMs: number; cpuMs: Record<string, number>; otherMs: number } {
    const out: Record<string, number> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids)) {
      out[name] = cpuMs(pid) - (this.#start.get(name) ?? NaN);
      ours += out[name];
    }
    return {
      wallMs: performance.now() - this.#t0,
      cpuMs: out,
      otherMs: Math.max(0, machineBusyMs() - this.#machine0 - ours),
    };
  }
}

/** The .cpuprofile files a process wrote into its directory (main thread and worker threads). */
export function cpuProfiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
}
