// The benchmark suite (bench/, `npm run bench`) at smoke size inside `npm test`: all five run end
// to end against the real stack (this run's Temporal server; sandbox, worker and API processes) and
// write their result files. No timing is judged here: BENCH_SMOKE=1 marks every target "n/a".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config } from '../../config';
import { tsxCommand } from '../../scripts/lib/children';
import { getTestTemporal } from '../support/temporal';

const BENCHMARKS = ['sandbox', 'latency', 'throughput', 'old-account', 'open-instruments'];

describe('benchmarks (smoke: tiny sizes, no targets)', function () {
  this.timeout(180_000); // five benchmarks end to end; a loaded 2-core CI machine takes over a minute
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('npm run bench: all five run and write bench/results/<name>.json', async () => {
    const temporal = await getTestTemporal();
    const { command, args } = tsxCommand(path.join(config().root, 'bench', 'run.ts'));
    let output = '';
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(command, args, {
        cwd: config().root,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: temporal.address,
          TEMPORAL_NAMESPACE: temporal.namespace,
          BENCH_SMOKE: '1',
          BENCH_RESULTS_DIR: dir,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      child.on('exit', resolve);
    });
    assert.equal(code, 0, output.slice(-4_000));
    for (const name of BENCHMARKS) {
      const result = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8'));
      assert.equal(result.benchmark, name);
      assert.equal(result.smoke, true);
      assert.ok(result.machine.nproc >= 1, `${name}: machine`);
      assert.ok(result.targets.length > 0, `${name}: targets`);
      assert.ok(
        result.targets.every((t: { met: unknown }) => t.met === null),
        `${name}: no verdict in a smoke run`,
      );
    }
    const all = JSON.parse(readFileSync(path.join(dir, 'all.json'), 'utf8'));
    assert.deepEqual(all.failures, []);
    assert.equal(all.benchmarks.length, BENCHMARKS.length);
    // Every purchase the smoke runs made was approved.
    const old = JSON.parse(readFileSync(path.join(dir, 'old-account.json'), 'utf8'));
    assert.equal(old.results.completed, true);
    assert.deepEqual(Object.keys(old.results.statuses), ['201']);
    const throughput = JSON.parse(readFileSync(path.join(dir, 'throughput.json'), 'utf8'));
    assert.ok(throughput.results.purchases > 0);
    assert.deepEqual(Object.keys(throughput.results.statuses), ['201']);
  });
});
