// The short chaos run inside `npm test` (the full one is `npm run test:chaos`): one combined
// scenario on a process stack — the worker and the API killed with SIGKILL mid-load and restarted, the sandbox
// dropping answers after moving money, answering 500/503/Throttling and answering too late, IPNs
// duplicated, reordered and delayed past the workflow's first status poll — then every purchase
// is checked against the FPS ledger and the reconciliation must find nothing.
import assert from 'node:assert/strict';
import {
  atRandomMoments,
  configureSandboxIpn,
  createInstruments,
  formatStatsTable,
  injectFaults,
  ipnTally,
  prng,
  resolvePending,
  runLoad,
  settleFaultTally,
  verify,
  waitQuiescent,
} from '../support/chaos';
import { startProcessStack, type ProcessStack } from '../support/process-stack';

const SEED = 20260701;

describe('chaos (short): kill -9, FPS faults and IPN disorder lose nothing and charge nothing twice', function () {
  this.timeout(150_000);
  let stack: ProcessStack;

  before(async function () {
    this.timeout(120_000);
    stack = await startProcessStack({
      name: 'chaos-short',
      ipnRelay: true,
      // One FPS call attempt gives up after 1.5 s: a 2.5 s sandbox delay outlives it, and the
      // retry (same CallerReference) races the late original.
      workerEnv: { FPS_TIMEOUT_MS: '1500' },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  it('combined faults: lost = 0, double-charged = 0, reconciliation clean', async () => {
    const started = Date.now();
    const random = prng(SEED);
    const instruments = await createInstruments(stack, 'short', { prepaid: 2, postpaid: 2, 'single-use': 2 });
    const faults: Record<string, number> = {};

    // IPNs: each sent twice by the sandbox, then held 0-6 s each by the relay (past the 5 s first
    // poll), so they arrive late, out of order, and some a third time.
    await configureSandboxIpn(stack, { duplicate: 1 });
    stack.relay!.settings = { delayMs: [0, 6_000], duplicate: 0.3 };

    const durationMs = 15_000;
    const loading = runLoad(stack, instruments, {
      scenario: 'short',
      durationMs,
      maxPurchases: 60,
      minPurchases: 24,
      concurrency: 8,
      seed: SEED,
      thinkMs: [500, 1_200],
    });
    const chaos = (async () => {
      await injectFaults(
        stack,
        [
          { kind: 'drop', count: 3, actions: ['Pay'] },
          { kind: 'error', code: 'InternalError', count: 2 },
          { kind: 'error', code: 'ServiceUnavailable', count: 2 },
          { kind: 'error', code: 'Throttling', count: 2 },
          { kind: 'delay', ms: 2_500, count: 2, actions: ['Pay'] },
        ],
        faults,
      );
      await atRandomMoments(
        2,
        durationMs,
        random,
        async (n) => {
          const [service, name] = n === 0 ? [stack.worker, 'kill -9 worker'] : [stack.api, 'kill -9 api'];
          await service.kill9();
          faults[name] = (faults[name] ?? 0) + 1;
          await service.restart();
        },
        0.2,
        0.6,
      );
      await injectFaults(
        stack,
        [
          { kind: 'drop', count: 2, actions: ['Pay'] },
          { kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['GetTransactionStatus'] },
        ],
        faults,
      );
    })();
    const [load] = await Promise.all([loading, chaos]);

    await resolvePending(stack, load.purchases, 60_000);
    await waitQuiescent(stack, instruments, 60_000);
    await settleFaultTally(stack, faults);
    Object.assign(faults, await ipnTally(stack));

    const { stats, problems } = await verify(stack, 'short (combined)', instruments, load, faults, started);
    console.log(`\n${formatStatsTable([stats])}\n`);
    assert.ok(stats.attempted >= 20, `the load ran (${stats.attempted} purchases)`);
    assert.equal(stats.lost, 0, problems.join('\n'));
    assert.equal(stats.doubleCharged, 0, problems.join('\n'));
    assert.equal(stats.discrepancies, 0, problems.join('\n'));
    assert.deepEqual(problems, []);
  });
});
