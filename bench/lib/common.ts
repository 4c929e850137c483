// Shared by every benchmark: sizes from the environment (BENCH_SMOKE=1 shrinks them all), the
// machine description, latency statistics, tables, and the JSON result file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config } from '../../config';

/** Tiny sizes, no timing targets: the mocha smoke test (test/e2e/bench-smoke.test.ts) runs this. */
export const SMOKE = process.env.BENCH_SMOKE === '1';

/** A bounded integer setting: BENCH_<NAME> from the environment, else the full or smoke default. */
export function setting(
  name: string,
  full: number,
  smoke: number,
  bounds: { min?: number; max?: number } = {},
): number {
  const raw = process.env[name];
  let value = SMOKE ? smoke : full;
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    value = Number(raw);
  }
  return Math.min(bounds.max ?? Number.MAX_SAFE_INTEGER, Math.max(bounds.min ?? 0, value));
}

export const resultsDir = () => process.env.BENCH_RESULTS_DIR || path.join(config().root, 'bench', 'results');

// ---- machine -----------------------------------------------------------------------------------

export interface Machine {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  node: string;
  temporalCli?: string;
  kernel: string;
}

export function machine(temporalCli?: string): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let temporal: string | undefined;
  if (temporalCli) {
    try {
      temporal = execFileSync(temporalCli, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
    } catch {
      temporal = undefined;
    }
  }
  return {
    nproc: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpuModel,
    node: process.version,
    temporalCli: temporal,
    kernel: `${os.type()} ${os.release()}`,
  };
}

// ---- statistics --------------------------------------------------------------------------------

export interface Distribution {
  n: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export const round = (x: number, digits = 2) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function distribution(samples: readonly number[]): Distribution {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    min: round(sorted[0] ?? NaN),
    max: round(sorted.at(-1) ?? NaN),
    mean: round(mean),
  };
}

/** Latency samples with the time each finished: for windows (warm-up, profiling) and rates. */
export class Recorder {
  readonly samples: number[] = [];
  readonly errors = new Map<string, number>();

  record(ms: number): void {
    this.samples.push(ms);
  }

  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  get errorCount(): number {
    let n = 0;
    for (const count of this.errors.values()) n += count;
    return n;
  }
}

// ---- presentation ------------------------------------------------------------------------------

/** A plain-text table: first row is the header. */
export function table(rows: Array<Array<string | number | undefined>>): string {
  const cells = rows.map((row) => row.map((c) => (c === undefined ? '' : typeof c === 'number' ? String(c) : c)));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** One verdict per target: `ok`, `MISSED`, or `n/a` in smoke runs (tiny sizes prove nothing). */
export interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean | null;
}

export function target(what: string, targetText: string, measured: number | string, met: boolean): Target {
  return { what, target: targetText, measured: String(measured), met: SMOKE ? null : met };
}

export const verdict = (t: Target) => (t.met === null ? 'n/a (smoke)' : t.met ? 'ok' : 'MISSED');

export interface BenchResult {
  benchmark: string;
  at: string;
  smoke: boolean;
  machine: Machine;
  /** What the run used: sizes, worker settings, log level, ... */
  settings: Record<string, unknown>;
  /** The headline numbers (see each benchmark). */
  results: Record<string, unknown>;
  targets: Target[];
  notes?: string[];
}

/** Writes <resultsDir>/<name>.json and returns its path. */
export function writeResult(result: BenchResult): string {
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.benchmark}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

export function printTargets(targets: Target[]): void {
  if (targets.length === 0) return;
  console.log(
    table([
      ['target', 'wanted', 'measured', 'verdict'],
      ...targets.map((t) => [t.what, t.target, t.measured, verdict(t)]),
    ]),
  );
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` at a time; stops at the deadline. */
export async function pool(
  count: number,
  concurrency: number,
  worker: (i: number) => Promise<void>,
  deadline = Infinity,
): Promise<number> {
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count && performance.now() < deadline) {
        const i = next++;
        await worker(i);
        done++;
      }
    }),
  );
  return done;
}
