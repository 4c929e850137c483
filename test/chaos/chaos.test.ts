// `npm run test:chaos`: "nothing lost, nothing charged twice". Each scenario runs a bounded load of
// concurrent purchases (plus a few refunds and settlements) on fresh instruments while one kind of
// failure is injected, waits until nothing is pending anywhere, checks every purchase against the
// FPS ledger by its CallerReference, and reconciles every workflow of the run with the ledger.
// The stack has its own Temporal dev server (SQLite file, fixed port) so that it can be restarted.
// A table per scenario is printed at the end; lost, double-charged and discrepancies must be 0.
import assert from 'node:assert/strict';
import { spawnService } from '../support/processes';
import {
  atRandomMoments,
  configureSandboxIpn,
  createInstruments,
  DEFAULT_MIX,
  formatStatsTable,
  injectFaults,
  ipnTally,
  prng,
  resolvePending,
  runLoad,
  settleFaultTally,
  verify,
  waitQuiescent,
  type AmountMix,
  type ScenarioStats,
} from '../support/chaos';
import { startProcessStack, type ProcessStack } from '../support/process-stack';

const SEED = Number(process.env.CHAOS_SEED ?? 424242);
/** Load per scenario: bounded in time and count. */
const DURATION_MS = Number(process.env.CHAOS_SCENARIO_MS ?? 15_000);
const MAX_PURCHASES = 100;
const CONCURRENCY = 8;
/** One FPS call attempt of the chaos worker gives up after this long (a "delay" fault outlives it). */
const FPS_TIMEOUT_MS = 2_000;

describe('chaos: nothing lost, nothing charged twice, whatever breaks', function () {
  this.timeout(600_000);
  let stack: ProcessStack;
  const table: ScenarioStats[] = [];

  before(async function () {
    this.timeout(180_000);
    stack = await startProcessStack({
      name: 'chaos',
      temporal: 'own',
      ipnRelay: true,
      workerEnv: { FPS_TIMEOUT_MS: String(FPS_TIMEOUT_MS) },
    });
  });
  after(async () => {
    if (table.length) console.log(`\n${formatStatsTable(table)}\n`);
    await stack?.stop();
  });
  afterEach(async () => {
    // A scenario that failed half-way must not leak its faults into the next one.
    if (!stack) return;
    await fetch(`${stack.sandboxUrl}/admin/faults`, { method: 'DELETE' }).catch(() => undefined);
    await configureSandboxIpn(stack, { duplicate: 0, delayMs: 0 }).catch(() => undefined);
    if (stack.relay) stack.relay.settings = { delayMs: [0, 0], duplicate: 0 };
    if (!stack.worker.running) await stack.worker.restart();
    if (!stack.sandbox.running) await stack.sandbox.restart();
    if (!stack.api.running) await stack.api.restart();
  });

  /** One scenario: fresh instruments, the load and `chaos` side by side, then the verdict. */
  async function scenario(
    name: string,
    index: number,
    chaos: (faults: Record<string, number>, random: () => number) => Promise<void>,
    mix: AmountMix = DEFAULT_MIX,
  ) {
    const started = Date.now();
    const random = prng(SEED + index);
    const instruments = await createInstruments(stack, name, { prepaid: 6, postpaid: 6, 'single-use': 2 });
    const faults: Record<string, number> = {};
    const relayBefore = { ...(stack.relay?.stats ?? { duplicated: 0, reordered: 0, received: 0 }) };
    const [load] = await Promise.all([
      runLoad(stack, instruments, {
        scenario: name,
        durationMs: DURATION_MS,
        maxPurchases: MAX_PURCHASES,
        minPurchases: 24,
        concurrency: CONCURRENCY,
        seed: SEED + index,
        mix,
      }),
      chaos(faults, random),
    ]);
    await resolvePending(stack, load.purchases, 120_000);
    await waitQuiescent(stack, instruments, 120_000);
    await settleFaultTally(stack, faults);
    const relay = stack.relay;
    if (relay && (relay.settings.delayMs[1] > 0 || relay.settings.duplicate > 0)) {
      const tally = await ipnTally(stack);
      faults['ipn duplicated'] = relay.stats.duplicated - relayBefore.duplicated;
      faults['ipn reordered'] = relay.stats.reordered - relayBefore.reordered;
      faults['ipn delayed'] = relay.stats.received - relayBefore.received;
      faults['ipn sent by FPS (total)'] = tally['ipn sent by FPS'];
    }
    const { stats, problems } = await verify(stack, name, instruments, load, faults, started);
    table.push(stats);
    console.log(
      `      ${name}: ${stats.attempted} purchases, ${stats.approved} approved, ${stats.declined} declined, ${stats.pendingResolved} pending→resolved, ${stats.unobservable} unobservable, lost ${stats.lost}, double-charged ${stats.doubleCharged}, discrepancies ${stats.discrepancies} (${stats.seconds} s)`,
    );
    assert.ok(stats.attempted >= 20, `the load ran (${stats.attempted} purchases)`);
    assert.equal(stats.lost, 0, problems.join('\n'));
    assert.equal(stats.doubleCharged, 0, problems.join('\n'));
    assert.equal(stats.discrepancies, 0, problems.join('\n'));
    assert.deepEqual(problems, []);
  }

  const count = (faults: Record<string, number>, name: string, n = 1) => (faults[name] = (faults[name] ?? 0) + n);

  it('baseline: no faults', async () => {
    await scenario('baseline', 0, async () => undefined);
  });

  it('the worker is killed with SIGKILL at random moments and restarted', async () => {
    await scenario('worker-kill', 1, async (faults, random) => {
      await atRandomMoments(
        3,
        DURATION_MS,
        random,
        async () => {
          await stack.worker.kill9();
          count(faults, 'kill -9 worker');
          await stack.worker.restart();
        },
        0.1,
        0.7,
      );
    });
  });

  it('the Temporal server is restarted mid-run (same port, same SQLite file)', async () => {
    await scenario('temporal-restart', 2, async (faults, random) => {
      await atRandomMoments(
        1,
        DURATION_MS,
        random,
        async () => {
          await stack.ownTemporal!.restart(1_500);
          count(faults, 'temporal restart');
        },
        0.3,
        0.5,
      );
    });
  });

  it('the API process is killed with SIGKILL mid-request and restarted: clients retry with the same Idempotency-Key', async () => {
    await scenario('api-kill', 8, async (faults, random) => {
      await atRandomMoments(
        2,
        DURATION_MS,
        random,
        async () => {
          await stack.api.kill9();
          count(faults, 'kill -9 api');
          await stack.api.restart();
        },
        0.2,
        0.7,
      );
    });
  });

  it('the sandbox (FPS) is killed with SIGKILL, and later stopped gracefully, and restarted', async () => {
    await scenario('sandbox-restart', 3, async (faults, random) => {
      await atRandomMoments(
        2,
        DURATION_MS,
        random,
        async (n) => {
          if (n === 0) {
            await stack.sandbox.kill9();
            count(faults, 'kill -9 sandbox');
          } else {
            count(faults, 'restart sandbox');
          }
          await stack.sandbox.restart();
        },
        0.2,
        0.7,
      );
    });
  });

  it('FPS drops answers after moving money, answers 500/503/Throttling, and answers too late', async () => {
    await scenario('fps-faults', 4, async (faults, random) => {
      await atRandomMoments(
        3,
        DURATION_MS,
        random,
        async () => {
          await injectFaults(
            stack,
            [
              { kind: 'drop', count: 3, actions: ['Pay'] },
              { kind: 'drop', count: 1, actions: ['Refund', 'SettleDebt'] },
              { kind: 'error', code: 'InternalError', count: 2 },
              { kind: 'error', code: 'ServiceUnavailable', count: 2 },
              { kind: 'error', code: 'Throttling', count: 2, actions: ['Pay'] },
              { kind: 'delay', ms: FPS_TIMEOUT_MS + 1_000, count: 2, actions: ['Pay'] },
              { kind: 'error', code: 'ServiceUnavailable', count: 2, actions: ['GetTransactionStatus'] },
            ],
            faults,
          );
        },
        0,
        0.7,
      );
    });
  });

  it('FPS answers after the activity timeout (15 s start-to-close)', async function () {
    // A worker whose FPS client would wait 30 s: Temporal's activity timeout fires first.
    await stack.worker.stop();
    const patient = await spawnService({
      name: 'chaos-worker-patient',
      script: 'worker/main.ts',
      env: { ...stack.env, FPS_TIMEOUT_MS: '30000' },
      readyLine: 'worker started',
      readyTimeoutMs: 90_000,
    });
    try {
      await scenario('activity-timeout', 5, async (faults) => {
        await injectFaults(stack, [{ kind: 'delay', ms: 16_000, count: 2, actions: ['Pay'] }], faults);
      });
    } finally {
      await patient.stop();
      await stack.worker.restart();
    }
  });

  it('IPNs are duplicated, reordered and delayed past the first status poll', async () => {
    await scenario(
      'ipn-disorder',
      6,
      async (faults) => {
        await configureSandboxIpn(stack, { duplicate: 2 });
        stack.relay!.settings = { delayMs: [0, 8_000], duplicate: 0.5 };
        count(faults, 'each IPN sent thrice by FPS');
      },
      { pendingSuccess: 0.3, pendingFailure: 0.15, denied: 0.05, failure: 0.05 },
    );
  });

  it('everything at once', async () => {
    await scenario('everything', 7, async (faults, random) => {
      await configureSandboxIpn(stack, { duplicate: 1 });
      stack.relay!.settings = { delayMs: [0, 6_000], duplicate: 0.3 };
      await injectFaults(
        stack,
        [
          { kind: 'drop', count: 2, actions: ['Pay'] },
          { kind: 'error', code: 'ServiceUnavailable', count: 2 },
          { kind: 'error', code: 'Throttling', count: 1 },
          { kind: 'delay', ms: FPS_TIMEOUT_MS + 1_000, count: 1, actions: ['Pay'] },
        ],
        faults,
      );
      await atRandomMoments(
        4,
        DURATION_MS,
        random,
        async (n) => {
          if (n === 0) {
            await stack.worker.kill9();
            count(faults, 'kill -9 worker');
            await stack.worker.restart();
          } else if (n === 3) {
            await stack.api.kill9();
            count(faults, 'kill -9 api');
            await stack.api.restart();
          } else if (n === 1) {
            await stack.ownTemporal!.restart(1_000);
            count(faults, 'temporal restart');
          } else {
            await stack.sandbox.kill9();
            count(faults, 'kill -9 sandbox');
            await stack.sandbox.restart();
          }
        },
        0.15,
        0.75,
      );
    });
  });
});
