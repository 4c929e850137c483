// 3. Old accounts: one postpaid account driven through BENCH_OLD_ACCOUNT_PURCHASES purchases
// (default 100,000) through the API by a few concurrent clients (the workflow serializes money
// operations anyway), with threshold settlements on the way (credit limit $10, 1-cent purchases:
// a SettleDebt every 800 purchases). The latency of the first 1,000 purchases must agree with the
// last 1,000 within ±20 %; every run's history stays bounded by continue-as-new.
// The stack is warmed up first on another instrument, so "day one" is not a cold JIT. Purchases
// carry UUID Idempotency-Keys, as merchants send them: the workflow remembers each purchase id
// (up to settings.processedIdLimit) and carries them across continue-as-new.
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { parseLedgerUrl } from '../store/db';
import { newId } from '../api/ids';
import { workflowIdFor, type InstrumentInput } from '../workflows/messages';
import {
  distribution,
  log,
  machine,
  pool,
  round,
  setting,
  SMOKE,
  table,
  target,
  type BenchResult,
  type Distribution,
} from './lib/common';
import { approve, createInstrument, snapshot, startInstrumentDirect, waitUntilReady } from './lib/instruments';
import { writeChart } from './lib/chart';
import { CpuMeter, memory } from './lib/processes';
import { startStack, type Stack } from './lib/stack';

export const name = 'old-account';

interface RunInfo {
  runId: string;
  status: string;
  historyLength: number;
  historySizeBytes: number;
}

/** Every run of the instrument's workflow (the chain of continue-as-new), with its history size. */
async function runsOf(stack: Stack, workflowId: string): Promise<RunInfo[]> {
  const runs: RunInfo[] = [];
  for await (const info of stack.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    runs.push({
      runId: info.runId,
      status: info.status.name,
      historyLength: info.historyLength ?? 0,
      historySizeBytes: info.historySize ?? 0,
    });
  }
  // Visibility may lag for the running run's size: describe it directly.
  await pool(runs.length, 8, async (i) => {
    const d = await stack.client.workflow.getHandle(workflowId, runs[i].runId).describe();
    runs[i].historyLength = d.historyLength ?? 0;
    runs[i].historySizeBytes = d.historySize ?? 0;
    runs[i].status = d.status.name;
  });
  return runs;
}

async function settlements(stack: Stack): Promise<number> {
  const r = await stack.sandboxHttp.json<{ transactions: Array<{ operation: string; status: string; count: number }> }>(
    'GET',
    '/admin/summary',
  );
  return (r.body?.transactions ?? [])
    .filter((t) => t.operation === 'SETTLE_DEBT' && t.status === 'Success')
    .reduce((n, t) => n + Number(t.count), 0);
}

export async function run(): Promise<BenchResult> {
  const purchases = setting('BENCH_OLD_ACCOUNT_PURCHASES', 100_000, 240, { min: 20, max: 1_000_000 });
  const clients = setting('BENCH_OLD_ACCOUNT_CLIENTS', 4, 2, { min: 1, max: 10 });
  const maxSeconds = setting('BENCH_OLD_ACCOUNT_MAX_SECONDS', 3_600, 60, { min: 10 });
  const warmup = setting('BENCH_OLD_ACCOUNT_WARMUP', 2_000, 20);
  const window = Math.max(1, Math.min(1_000, Math.floor(purchases / 10)));
  // Smoke: continue-as-new early, so the short run still crosses runs and settles.
  const canEvents = setting('BENCH_OLD_ACCOUNT_CAN_EVENTS', 0, 150);
  const creditCents = setting('BENCH_OLD_ACCOUNT_CREDIT_CENTS', 1_000, 50, { min: 10 });

  const stack = await startStack({ label: name });
  try {
    // Warm-up on a postpaid account of its own, the same way (API, UUID keys, threshold settlements), so
    // the first window measures a new account, not a cold JIT of the postpaid and settlement paths.
    log(`${name}: warm-up, ${warmup} purchases on another postpaid account`);
    const warm = await createInstrument(stack, 'bench-old-warmup', {
      type: 'postpaid',
      creditLimit: (creditCents / 100).toFixed(2),
      globalAmountLimit: '1000000.00',
      currency: 'USD',
    });
    await approve(stack, warm.authorizationUrl);
    await waitUntilReady(stack, [warm.instrumentId], 60_000);
    await pool(warmup, clients, async () => {
      const r = await stack.api.request(
        'POST',
        `/instruments/${warm.instrumentId}/purchases`,
        '{"amount":"0.01","currency":"USD"}',
        { 'idempotency-key': randomUUID() },
      );
      if (r.status !== 201) throw new Error(`warm-up purchase: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    });
    const settledBefore = await settlements(stack);

    // An id as the API makes them (ins_ + 20 characters): it is part of every CallerReference the workflow keeps.
    const instrumentId = newId('ins');
    const input: InstrumentInput = {
      instrumentId,
      customerId: 'bench-old-account',
      type: 'postpaid',
      currency: 'USD',
      creditLimit: creditCents,
      globalAmountLimit: 100_000_000,
      description: 'old-account benchmark',
      settings: canEvents ? { continueAsNewAfterEvents: canEvents } : undefined,
    };
    await approve(stack, await startInstrumentDirect(stack, input));
    await waitUntilReady(stack, [instrumentId], 60_000);

    log(
      `${name}: ${purchases} purchases on one postpaid account (credit limit ${creditCents} cents, threshold settlement), ${clients} clients, at most ${maxSeconds} s`,
    );
    const latency = new Float64Array(purchases).fill(NaN);
    /** Each approved purchase's key and original answer (transaction id), for the retries of old ones. */
    const answered: Array<{ key: string; transactionId: string }> = [];
    // Other people's load on the machine during the first and the last window (they are minutes apart).
    const pids = {
      worker: stack.pids.worker,
      api: stack.pids.api,
      sandbox: stack.pids.sandbox,
      bench: process.pid,
      ...(stack.pids.temporal ? { temporal: stack.pids.temporal } : {}),
    };
    const firstMeter = new CpuMeter(pids);
    const lastMeter = new CpuMeter(pids);
    let firstLoad: ReturnType<CpuMeter['read']> | undefined;
    firstMeter.start();
    const statuses: Record<string, number> = {};
    const deadline = performance.now() + maxSeconds * 1000;
    const started = performance.now();
    let lastReport = started;
    let next = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < purchases && performance.now() < deadline) {
          const k = next++;
          if (k === purchases - window) lastMeter.start();
          const t0 = performance.now();
          let status: string;
          try {
            // Idempotency keys as merchants send them (UUIDs): they become purchase ids, kept by the workflow.
            const key = randomUUID();
            const r = await stack.api.request(
              'POST',
              `/instruments/${instrumentId}/purchases`,
              '{"amount":"0.01","currency":"USD"}',
              { 'idempotency-key': key },
            );
            status = String(r.status);
            if (r.status === 201)
              answered[k] = {
                key,
                transactionId: String((JSON.parse(r.text) as { transactionId?: string }).transactionId),
              };
            if (r.status !== 201 && (statuses[status] ?? 0) < 3)
              log(`${name}: purchase ${k}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
          } catch (err) {
            status = `error: ${(err as Error).message.slice(0, 80)}`;
          }
          latency[k] = performance.now() - t0;
          statuses[status] = (statuses[status] ?? 0) + 1;
          done++;
          if (done === window) firstLoad = firstMeter.read();
          if (performance.now() - lastReport > 30_000) {
            lastReport = performance.now();
            log(`${name}: ${done} purchases, ${Math.round(done / ((lastReport - started) / 1000))}/s`);
          }
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const completed = done === purchases;
    const lastLoad = completed ? lastMeter.read() : undefined;
    const otherLoad = (r: ReturnType<CpuMeter['read']> | undefined) =>
      r ? round((100 * r.otherMs) / (r.wallMs * machine().nproc), 1) : null;

    const slice = (from: number, to: number) => Array.from(latency.subarray(from, to)).filter((x) => !Number.isNaN(x));
    const first = distribution(slice(0, window));
    const last = distribution(slice(done - window, done));
    const buckets = 10;
    const trend: Array<{ from: number; to: number; latencyMs: Distribution }> = [];
    for (let b = 0; b < buckets; b++) {
      const from = Math.floor((b * done) / buckets);
      const to = Math.floor(((b + 1) * done) / buckets);
      if (to > from) trend.push({ from: from + 1, to, latencyMs: distribution(slice(from, to)) });
    }
    const chart = writeChart('old-account-latency', {
      title: `Old account: purchase latency per ${Math.round(done / buckets).toLocaleString('en-US')} purchases (${done.toLocaleString('en-US')} in all)`,
      xLabel: 'purchases so far',
      yLabel: 'latency ms',
      series: (['p50', 'p99'] as const).map((q) => ({
        name: `${q} of the window`,
        points: trend.map((t): [number, number] => [t.to, t.latencyMs[q]]),
      })),
    });
    log(`${name}: chart ${path.relative(process.cwd(), chart)}`);

    // The record at work: retries of old purchases (far beyond the workflow's processed-id window)
    // answer their original result and move nothing; refunds of old purchases; the whole statement.
    const old = answered.slice(0, Math.max(1, done - window)).filter(Boolean);
    const retryCount = Math.min(old.length, setting('BENCH_OLD_ACCOUNT_RETRIES', 1_000, 20));
    const refundCount = Math.min(old.length, setting('BENCH_OLD_ACCOUNT_REFUNDS', 100, 5));
    const picks = [...old].sort(() => Math.random() - 0.5);
    const beforeRetries = await snapshot(stack, instrumentId);
    const retryLatency: number[] = [];
    let retriesAnsweredOriginal = 0;
    const retriesStarted = performance.now();
    await pool(retryCount, clients, async (i) => {
      const t0 = performance.now();
      const r = await stack.api.request(
        'POST',
        `/instruments/${instrumentId}/purchases`,
        '{"amount":"0.01","currency":"USD"}',
        { 'idempotency-key': picks[i].key },
      );
      retryLatency.push(performance.now() - t0);
      const body = r.status < 300 ? (JSON.parse(r.text) as { transactionId?: string; status?: string }) : {};
      if (body.transactionId === picks[i].transactionId) retriesAnsweredOriginal++;
      else log(`${name}: retry of ${picks[i].key}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    });
    const retrySeconds = (performance.now() - retriesStarted) / 1000;
    const afterRetries = await snapshot(stack, instrumentId);
    // Total charged, not debt: a threshold settlement still in flight may lower the debt meanwhile.
    const unchanged =
      afterRetries.totalCharged === beforeRetries.totalCharged &&
      afterRetries.purchasesApproved === beforeRetries.purchasesApproved;
    const refundLatency: number[] = [];
    const refundStatuses: Record<string, number> = {};
    const refundsStarted = performance.now();
    await pool(refundCount, clients, async (i) => {
      const purchase = picks[picks.length - 1 - i];
      const t0 = performance.now();
      const r = await stack.api.request(
        'POST',
        `/instruments/${instrumentId}/refunds`,
        JSON.stringify({ purchaseId: purchase.key, amount: '0.01', currency: 'USD' }),
        { 'idempotency-key': randomUUID() },
      );
      refundLatency.push(performance.now() - t0);
      refundStatuses[r.status] = (refundStatuses[r.status] ?? 0) + 1;
      if (r.status >= 300 && (refundStatuses[r.status] ?? 0) <= 3)
        log(`${name}: refund of ${purchase.key}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    });
    const refundSeconds = (performance.now() - refundsStarted) / 1000;
    const statementStarted = performance.now();
    const today = new Date().toISOString().slice(0, 10);
    const statementAnswer = await stack.api.request(
      'GET',
      `/instruments/${instrumentId}/statement?from=2000-01-01&to=${today}`,
    );
    const statementMs = round(performance.now() - statementStarted, 1);
    const statementLines =
      statementAnswer.status === 200 ? (JSON.parse(statementAnswer.text) as { lines: unknown[] }).lines.length : 0;
    const ledger = parseLedgerUrl(stack.ledgerUrl);
    const storeBytes =
      ledger.dialect === 'sqlite'
        ? ['', '-wal'].reduce((n, suffix) => {
            try {
              return n + statSync(`${ledger.target}${suffix}`).size;
            } catch {
              return n;
            }
          }, 0)
        : null;
    const recordResults = {
      retries: {
        n: retryCount,
        answeredOriginal: retriesAnsweredOriginal,
        debtAndCountUnchanged: unchanged,
        seconds: round(retrySeconds, 2),
        latencyMs: distribution(retryLatency),
      },
      refunds: {
        n: refundCount,
        statuses: refundStatuses,
        seconds: round(refundSeconds, 2),
        latencyMs: distribution(refundLatency),
      },
      statement: {
        status: statementAnswer.status,
        ms: statementMs,
        bytes: statementAnswer.text.length,
        lines: statementLines,
      },
      storeBytes,
    };
    console.log(
      table([
        ['old operations', 'n', 'ok', 'seconds', 'p50 ms', 'p99 ms'],
        [
          'retries',
          retryCount,
          `${retriesAnsweredOriginal} original, unchanged: ${unchanged}`,
          recordResults.retries.seconds,
          recordResults.retries.latencyMs.p50,
          recordResults.retries.latencyMs.p99,
        ],
        [
          'refunds',
          refundCount,
          JSON.stringify(refundStatuses),
          recordResults.refunds.seconds,
          recordResults.refunds.latencyMs.p50,
          recordResults.refunds.latencyMs.p99,
        ],
        [
          'statement',
          1,
          `${statementAnswer.status}, ${statementLines} lines, ${statementAnswer.text.length} bytes`,
          round(statementMs / 1000, 2),
          '',
          '',
        ],
      ]),
    );
    console.log(`store: ${storeBytes ?? 'n/a (PostgreSQL)'} bytes`);

    const final = await snapshot(stack, instrumentId);
    const runs = await runsOf(stack, workflowIdFor(instrumentId));
    const lengths = runs.map((r) => r.historyLength);
    const sizes = runs.map((r) => r.historySizeBytes);
    // Settlements of the account itself (the warm-up account settled too).
    const settled = (await settlements(stack)) - settledBefore;
    const workerMemory = memory(stack.pids.worker);
    const change = (q: 'p50' | 'mean' | 'p95' | 'p99') => round((100 * (last[q] - first[q])) / first[q], 1);

    console.log(
      table([
        ['purchases', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms'],
        [`1–${window}`, first.n, first.p50, first.p95, first.p99, first.mean],
        [`${done - window + 1}–${done}`, last.n, last.p50, last.p95, last.p99, last.mean],
        ['change', '', `${change('p50')} %`, `${change('p95')} %`, `${change('p99')} %`, `${change('mean')} %`],
      ]),
    );
    console.log(
      `other load on the machine: ${otherLoad(firstLoad)} % of all CPUs during the first window, ${otherLoad(lastLoad)} % during the last`,
    );
    console.log(
      table([
        ['purchases', 'p50 ms', 'p99 ms', 'max ms'],
        ...trend.map((t) => [`${t.from}–${t.to}`, t.latencyMs.p50, t.latencyMs.p99, t.latencyMs.max]),
      ]),
    );
    console.log(
      table([
        [
          'done',
          'seconds',
          'purchases/s',
          'statuses',
          'continue-as-new runs',
          'runs',
          'max events/run',
          'max history bytes/run',
          'settlements',
          'worker RSS MiB',
        ],
        [
          done,
          round(elapsed, 1),
          Math.round(done / elapsed),
          JSON.stringify(statuses),
          final.continueAsNewCount,
          runs.length,
          Math.max(...lengths),
          Math.max(...sizes),
          settled,
          workerMemory.rssMiB,
        ],
      ]),
    );
    const ok201 = statuses['201'] ?? 0;
    return {
      benchmark: name,
      at: new Date().toISOString(),
      smoke: SMOKE,
      machine: machine(stack.temporalCli),
      settings: {
        purchases,
        clients,
        window,
        warmup,
        creditLimitCents: creditCents,
        thresholdPercent: 80,
        continueAsNewAfterEvents: canEvents || 'default (workflows/settings.ts)',
        maxSeconds,
        worker: stack.workerSettings,
        logLevel: stack.logLevel,
      },
      results: {
        completed,
        purchasesDone: done,
        seconds: round(elapsed, 1),
        purchasesPerSecond: Math.round(done / elapsed),
        statuses,
        first,
        last,
        changePercent: { p50: change('p50'), p95: change('p95'), p99: change('p99'), mean: change('mean') },
        otherLoadPercent: { firstWindow: otherLoad(firstLoad), lastWindow: otherLoad(lastLoad) },
        trend,
        continueAsNewRuns: final.continueAsNewCount,
        runs: runs.length,
        historyEventsPerRun: {
          max: Math.max(...lengths),
          mean: round(lengths.reduce((a, b) => a + b, 0) / lengths.length, 1),
          current: runs.find((r) => r.status === 'RUNNING')?.historyLength,
        },
        historyBytesPerRun: {
          max: Math.max(...sizes),
          current: runs.find((r) => r.status === 'RUNNING')?.historySizeBytes,
        },
        purchasesApproved: final.purchasesApproved,
        debtCents: final.debt,
        settlements: settled,
        workerMemory,
        record: recordResults,
      },
      targets: [
        target(
          'retries of old purchases answer their original result, nothing moves',
          `${retryCount} original, total charged and count unchanged`,
          `${retriesAnsweredOriginal} original, unchanged: ${unchanged}`,
          retriesAnsweredOriginal === retryCount && unchanged,
        ),
        target(
          'refunds of old purchases',
          `${refundCount} × 201`,
          JSON.stringify(refundStatuses),
          (refundStatuses[201] ?? 0) === refundCount,
        ),
        target(
          `p50 of purchases ${done - window + 1}–${done} vs 1–${window}`,
          'within ±10 %',
          `${change('p50')} %`,
          completed && Math.abs(change('p50')) <= 10,
        ),
        target(
          'mean, last vs first window',
          'within ±10 %',
          `${change('mean')} %`,
          completed && Math.abs(change('mean')) <= 10,
        ),
        target(
          'history per run bounded by continue-as-new',
          '< 10,240 events',
          `max ${Math.max(...lengths)} events in ${runs.length} runs`,
          Math.max(...lengths) < 10_240 && runs.length > 1,
        ),
        target(
          'every purchase approved',
          `${purchases}`,
          `${ok201} (${final.purchasesApproved} in the workflow)`,
          completed && ok201 === purchases,
        ),
      ],
    };
  } finally {
    await stack.stop();
  }
}
