// `npm run bench` runs the five benchmarks in one go on this machine, then bench:record-cost and
// bench:webhooks (what the record and merchant webhooks cost, as ratios against off); `npm run
// bench:<name>` (or `npm run bench -- <name> ...`) runs some of them. Each prints its table and
// writes bench/results/<name>.json (BENCH_RESULTS_DIR elsewhere); the run ends with all targets.
//
//   sandbox           Pay requests/s one sandbox process sustains
//   latency           floor (signed Pay) vs purchase Update vs API purchase, p50/p95/p99, and the
//                     Update + no-op local activity floor (b)/(c) are judged against
//   throughput        purchases/s through the API, 1,000 funded instruments, 64 clients, 60 s (+ CPU
//                     profile), against a throughput floor of no-op-local-activity Updates on 1,000
//                     workflows; latency against load (chart bench/charts/throughput-latency-vs-load.svg)
//   old-account       one postpaid account through 100,000 purchases: first vs last 1,000 (chart
//                     bench/charts/old-account-latency.svg), retries and refunds of old purchases
//   open-instruments  100,000 authorized idle instruments: worker and server RSS, time to start them,
//                     a purchase on a random idle one
//
// BENCH_SMOKE=1 shrinks every size (no targets judged); see each file for its BENCH_* settings.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  log,
  machine,
  printTargets,
  resultsDir,
  SMOKE,
  table,
  verdict,
  writeResult,
  type BenchResult,
} from './lib/common';
import * as latency from './latency';
import * as oldAccount from './old-account';
import * as openInstruments from './open-instruments';
import * as sandbox from './sandbox';
import { stopSharedStack } from './lib/stack';
import { summaryMarkdown } from './lib/summary';
import * as throughput from './throughput';

const BENCHMARKS: Record<string, { run(): Promise<BenchResult> }> = {
  sandbox,
  latency,
  throughput,
  'old-account': oldAccount,
  'open-instruments': openInstruments,
};

const COST_SCRIPTS = ['bench/record-cost.ts', 'bench/webhooks.ts'];

async function main(argv: string[]): Promise<number> {
  const names = argv.filter((a) => !a.startsWith('-'));
  const unknown = names.filter((n) => !(n in BENCHMARKS));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(BENCHMARKS).join(', ')}`);
    return 2;
  }
  const chosen = names.length ? Object.keys(BENCHMARKS).filter((n) => names.includes(n)) : Object.keys(BENCHMARKS);
  const m = machine();
  log(
    `machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}${SMOKE ? ' — SMOKE run (tiny sizes, no targets)' : ''}`,
  );
  const results: BenchResult[] = [];
  const failures: string[] = [];
  const started = performance.now();
  for (const name of chosen) {
    log(`=== ${name} ===`);
    const t0 = performance.now();
    try {
      const result = await BENCHMARKS[name].run();
      result.smoke = SMOKE;
      const file = writeResult(result);
      printTargets(result.targets);
      log(`${name} done in ${Math.round((performance.now() - t0) / 1000)} s → ${path.relative(process.cwd(), file)}`);
      results.push(result);
    } catch (err) {
      failures.push(name);
      console.error(`[bench] ${name} failed:`, err);
    }
  }
  await stopSharedStack();
  // The whole run (no names, not a smoke run) also measures what the record and the merchant webhooks
  // cost, with their own scripts (same-run ratios against off; they print their own tables).
  if (!names.length && !SMOKE) {
    for (const script of COST_SCRIPTS) {
      log(`=== ${script} ===`);
      const child = spawnSync(process.execPath, ['--import', 'tsx', script], { stdio: 'inherit' });
      if (child.status !== 0) failures.push(script);
    }
  }
  const targets = results.flatMap((r) => r.targets.map((t) => ({ ...t, benchmark: r.benchmark })));
  if (targets.length) {
    console.log(`\nAll targets (${Math.round((performance.now() - started) / 1000)} s):`);
    console.log(
      table([
        ['benchmark', 'target', 'wanted', 'measured', 'verdict'],
        ...targets.map((t) => [t.benchmark, t.what, t.target, t.measured, verdict(t)]),
      ]),
    );
  }
  if (results.length) {
    const md = summaryMarkdown(results);
    writeFileSync(path.join(resultsDir(), 'summary.md'), md);
    console.log(`\n${md}`);
  }
  if (chosen.length > 1) {
    const file = path.join(resultsDir(), 'all.json');
    writeFileSync(
      file,
      `${JSON.stringify({ at: new Date().toISOString(), smoke: SMOKE, machine: results[0]?.machine ?? m, benchmarks: results, failures }, null, 2)}\n`,
    );
  }
  if (failures.length) console.error(`[bench] failed: ${failures.join(', ')}`);
  return failures.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
