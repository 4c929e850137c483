// `npm run test:cluster`: the production topology (scripts/lib/cluster.ts: PostgreSQL, the Temporal
// server on it, the sandbox, two workers, two API processes) keeps every purchase under failure.
// A steady purchase load over prepaid instruments goes through both API processes; clients retry
// transport errors and 5xx on the OTHER process with the same Idempotency-Key. Meanwhile: kill -9
// a worker (the other takes its instruments after the sticky-queue timeout), kill -9 an API
// process, restart the Temporal server, restart PostgreSQL (fast shutdown), restart the sandbox.
// Then: every purchase answered, each approved exactly once at FPS and nothing charged that was not
// asked for, each balance = funding − approved purchases = the sandbox's, `npm run reconcile`
// clean, every instrument answering on both API processes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { config } from '../../config';
import { formatDecimal } from '../../fps/money';
import { exitOnSignals } from '../../scripts/lib/children';
import { startCluster, type Cluster } from '../../scripts/lib/cluster';
import { postgresAvailable } from '../../scripts/lib/postgres';
import { SandboxLedger } from '../../scripts/lib/reconcile';
import { activeInstrument } from '../api/stack';

const INSTRUMENTS = Number(process.env.CLUSTER_TEST_INSTRUMENTS ?? 200);
const FUNDING_MINOR = 100_00;
/** Concurrent clients of the load, each waiting a little between purchases. */
const CLIENTS = 6;
const THINK_MS: [number, number] = [50, 250];
/** Quiet time around each fault, so each one hits a steady load. */
const STEADY_MS = Number(process.env.CLUSTER_TEST_STEADY_MS ?? 12_000);
/** A purchase still unanswered after this long counts as lost. */
const PURCHASE_DEADLINE_MS = 180_000;
const root = config().root;

type Outcome = 'approved' | 'declined' | 'pending' | 'no_answer';

interface Purchase {
  purchaseId: string;
  instrumentId: string;
  amount: number;
  outcome: Outcome;
  attempts: number;
  /** Answered by another API process than the first attempt went to. */
  failedOver: boolean;
  transactionId?: string;
  code?: string;
  issuedAt: number;
  answeredAt?: number;
}

const log = (message: string) => console.log(`      [cluster ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** The reconciliation's verdict in one line: its type table's totals and the first discrepancies. */
function reconcileSummary(output: string): string {
  const lines = output.trim().split('\n');
  const note = lines.find((l) => l.startsWith('note: three-way')) ?? 'two-way only';
  const found = lines.findIndex((l) => /^\d+ discrepanc/.test(l));
  if (found < 0) return `${lines.find((l) => /no discrepancies/i.test(l)) ?? lines.at(-1)} (${note})`;
  return [lines[found], ...lines.slice(found + 1, found + 4)].join(' | ') + ` (${note})`;
}

describe('production topology: failover under load', function () {
  this.timeout(1_200_000);
  let cluster: Cluster;
  const logs = new Map<string, WriteStream>();
  /** Processes that ended without being stopped or killed by the suite (a crash is a failure). */
  const crashes: string[] = [];

  before(async function () {
    if (!postgresAvailable()) throw new Error('PostgreSQL 15 is not installed (apt-get install postgresql)');
    this.timeout(600_000);
    exitOnSignals();
    mkdirSync(path.join(root, 'test-artifacts'), { recursive: true });
    const started = Date.now();
    cluster = await startCluster({
      ports: 'free',
      // The UI is not under test here; it would only take memory from the rest.
      ui: false,
      progress: log,
      extraEnv: {
        sandbox: {
          SANDBOX_PENDING_DELAY_MS: '500',
          SANDBOX_IPN_RETRY_BASE_MS: '100',
          SANDBOX_IPN_RETRY_MAX_MS: '1000',
        },
        // A Pay the sandbox never answered (it was restarted mid-call) is retried sooner.
        worker: { FPS_TIMEOUT_MS: '3000' },
        api: { API_OPERATION_TIMEOUT_MS: '20000' },
      },
      onLine: (name, line) => {
        let stream = logs.get(name);
        if (!stream) {
          stream = createWriteStream(path.join(root, 'test-artifacts', `cluster-${name}.log`), { flags: 'w' });
          logs.set(name, stream);
        }
        stream.write(`${line}\n`);
      },
      onUnexpectedExit: (name, info) => {
        crashes.push(
          `${name} exited by itself (code ${info.code}, signal ${info.signal}): see test-artifacts/cluster-${name}.log`,
        );
        log(`${name} EXITED by itself (code ${info.code}, signal ${info.signal})`);
      },
    });
    log(`cluster up in ${Math.round((Date.now() - started) / 1000)} s (logs: test-artifacts/cluster-*.log)`);
  });

  after(async () => {
    await cluster?.stop();
    for (const stream of logs.values()) stream.end();
  });

  it('loses no purchase and counts none twice while a worker, an API, Temporal, PostgreSQL and FPS fail', async () => {
    const suiteStarted = Date.now();
    const apis = cluster.apiUrls.map((apiUrl) => ({ apiUrl, apiKey: cluster.apiKey }));

    // ---- instruments: created and authorized through both API processes --------------------------
    const instruments: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < INSTRUMENTS) {
          const i = next++;
          const { instrumentId } = await activeInstrument(apis[i % apis.length], `cluster-cust-${i}`, {
            type: 'prepaid',
            fundingAmount: formatDecimal(FUNDING_MINOR, 'USD'),
            currency: 'USD',
            description: `cluster failover ${i}`,
          });
          instruments.push(instrumentId);
          if (instruments.length % 50 === 0) log(`${instruments.length}/${INSTRUMENTS} instruments active`);
        }
      }),
    );
    log(`${INSTRUMENTS} instruments active in ${Math.round((Date.now() - suiteStarted) / 1000)} s`);

    // ---- the load ----------------------------------------------------------------------------------
    const purchases: Purchase[] = [];
    let stopLoad = false;
    let issued = 0;
    let retries = 0;
    const down = new Set<number>();

    /** POST/GET on API `start`, then the other ones in turn on transport errors and 5xx, same key. */
    async function request(
      method: string,
      urlPath: string,
      start: number,
      deadline: number,
      body?: unknown,
      idempotencyKey?: string,
    ): Promise<{ status: number; body: any; api: number } | undefined> {
      for (let attempt = 0; Date.now() < deadline; attempt++) {
        const api = (start + attempt) % apis.length;
        try {
          const response = await fetch(`${apis[api].apiUrl}${urlPath}`, {
            method,
            headers: {
              'x-api-key': cluster.apiKey,
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
              ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
            },
            body: body === undefined ? undefined : JSON.stringify(body),
            signal: AbortSignal.timeout(30_000),
          });
          const text = await response.text();
          if (response.status < 500) {
            down.delete(api);
            return { status: response.status, body: text ? JSON.parse(text) : undefined, api };
          }
        } catch {
          down.add(api);
        }
        retries++;
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)));
      }
      return undefined;
    }

    async function buy(instrumentId: string, amount: number, client: number): Promise<void> {
      const p: Purchase = {
        purchaseId: `cl-${issued++}`,
        instrumentId,
        amount,
        outcome: 'pending',
        attempts: 0,
        failedOver: false,
        issuedAt: Date.now(),
      };
      purchases.push(p);
      const deadline = p.issuedAt + PURCHASE_DEADLINE_MS;
      // Spread over both processes; an API known to be down is skipped like a load balancer would.
      let start = client % apis.length;
      if (down.has(start)) start = (start + 1) % apis.length;
      const answer = await request(
        'POST',
        `/instruments/${instrumentId}/purchases`,
        start,
        deadline,
        { amount: formatDecimal(amount, 'USD'), currency: 'USD' },
        p.purchaseId,
      );
      if (!answer) return void (p.outcome = 'no_answer');
      p.failedOver = answer.api !== start;
      let result = answer.body;
      // 202: Pending at FPS. Follow it by id until FPS has decided.
      while (answer.status === 202 || result?.outcome === 'pending') {
        if (Date.now() > deadline) return void (p.outcome = 'no_answer');
        await sleep(300);
        const got = await request('GET', `/instruments/${instrumentId}/purchases/${p.purchaseId}`, start, deadline);
        if (!got) return void (p.outcome = 'no_answer');
        if (got.status !== 200) continue;
        result = got.body;
        if (result.outcome !== 'pending') break;
      }
      p.answeredAt = Date.now();
      if (result?.outcome === 'approved') {
        p.outcome = 'approved';
        p.transactionId = result.transactionId;
      } else if (answer.status === 402 || result?.outcome === 'declined') {
        p.outcome = 'declined';
        p.code = result?.reason?.code ?? result?.code ?? String(answer.status);
      } else {
        throw new Error(`purchase ${p.purchaseId}: unexpected answer ${answer.status} ${JSON.stringify(result)}`);
      }
    }

    let seed = 20261203;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    /** $1–$4.99; 5% end in .13 (Pending, then Success: IPN and status polling through the faults). */
    const amountFor = () => {
      const dollars = 1 + Math.floor(random() * 4);
      const cents = random() < 0.05 ? 13 : Math.floor(random() * 100);
      return dollars * 100 + (cents === 14 || cents === 51 || cents === 52 ? 0 : cents);
    };

    const load = Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        while (!stopLoad) {
          await buy(instruments[Math.floor(random() * instruments.length)], amountFor(), client);
          await sleep(THINK_MS[0] + random() * (THINK_MS[1] - THINK_MS[0]));
        }
      }),
    );
    const loadStarted = Date.now();
    const progress = setInterval(() => {
      const answered = purchases.filter((p) => p.outcome !== 'pending').length;
      const s = Math.round((Date.now() - loadStarted) / 1000);
      log(
        `t=${s}s ${purchases.length} purchases, ${answered} answered (${(answered / s).toFixed(1)}/s), ${retries} client retries`,
      );
    }, 10_000);

    // ---- the faults, one after the other under the load ------------------------------------------
    const faults: Array<{ fault: string; at: number; seconds: number }> = [];
    const fault = async (name: string, action: () => Promise<void>) => {
      await sleep(STEADY_MS);
      const at = Date.now();
      await action();
      faults.push({ fault: name, at: Math.round((at - loadStarted) / 1000), seconds: (Date.now() - at) / 1000 });
      log(`${name} (${((Date.now() - at) / 1000).toFixed(1)} s)`);
    };
    try {
      await fault('kill -9 worker-1: worker-2 carries every instrument', async () => {
        await cluster.workers[0].kill9();
      });
      await fault('kill -9 api-1: clients retry on api-2 with the same keys', async () => {
        await cluster.apis[0].kill9();
      });
      await fault('api-1 and worker-1 back (a supervisor restarts them)', async () => {
        await Promise.all([cluster.apis[0].start(), cluster.workers[0].start()]);
      });
      await fault('Temporal server restarted (SIGTERM, 2 s down)', () => cluster.temporal.restart(2_000));
      await fault('PostgreSQL restarted (fast shutdown)', () => cluster.postgres.restart({ mode: 'fast' }));
      await fault('FPS sandbox restarted', () => cluster.sandbox.restart());
      await sleep(STEADY_MS);
    } finally {
      stopLoad = true;
      await load;
      clearInterval(progress);
    }
    const loadSeconds = (Date.now() - loadStarted) / 1000;

    // ---- the verdict -------------------------------------------------------------------------------
    const problems: string[] = [...crashes];
    // Private webhook URLs are refused here (as in compose): the storefront registers no endpoint
    // at its own address (it could never be delivered to) and follows the event log instead.
    const endpoints = (await (
      await fetch(`${cluster.apiUrls[0]}/webhook-endpoints`, { headers: { 'x-api-key': cluster.apiKey } })
    ).json()) as { data: Array<{ url: string }> };
    for (const e of endpoints.data) problems.push(`an undeliverable webhook endpoint was registered: ${e.url}`);
    const byOutcome = (o: Outcome) => purchases.filter((p) => p.outcome === o);
    for (const p of byOutcome('no_answer')) problems.push(`lost: ${p.purchaseId} on ${p.instrumentId} never answered`);

    // Nothing pending anywhere before reading balances.
    const ledger = new SandboxLedger(cluster.sandboxUrl);
    const quietDeadline = Date.now() + 120_000;
    for (;;) {
      const summary = (await (await fetch(`${cluster.sandboxUrl}/admin/summary`)).json()) as any;
      if (!summary.pendingTransactions && !summary.ipnDeliveries?.pending) break;
      if (Date.now() > quietDeadline)
        throw new Error(
          `the sandbox still has pending work: ${JSON.stringify(summary)}${crashes.map((c) => `; ${c}`).join('')}`,
        );
      await sleep(500);
    }

    // Per purchase at FPS, by its CallerReference: approved exactly once, declined never charged.
    const fpsInstrumentOf = new Map<string, string>();
    const check = async (p: Purchase) => {
      const txs = await ledger.byCallerReference(`${p.instrumentId}:pay:${p.purchaseId}`);
      const charged = txs.filter((t) => t.operation === 'PAY' && t.status === 'Success');
      if (p.outcome === 'approved') {
        if (charged.length !== 1) problems.push(`${p.purchaseId}: approved, FPS charged it ${charged.length} times`);
        else if (p.transactionId && charged[0].id !== p.transactionId)
          problems.push(`${p.purchaseId}: approved as ${p.transactionId}, FPS has ${charged[0].id}`);
        if (charged[0]?.fpsInstrumentId) fpsInstrumentOf.set(p.instrumentId, charged[0].fpsInstrumentId);
      } else if (p.outcome === 'declined' && charged.length > 0) {
        problems.push(`${p.purchaseId}: declined (${p.code}) to the client, FPS charged it`);
      }
    };
    for (let i = 0; i < purchases.length; i += 20) await Promise.all(purchases.slice(i, i + 20).map(check));

    // Per instrument: workflow balance = funding − approved = FPS balance; FPS has no Pay nobody sent.
    const sent = new Set(purchases.map((p) => `${p.instrumentId}:pay:${p.purchaseId}`));
    const approvedBy = new Map<string, number>();
    for (const p of byOutcome('approved'))
      approvedBy.set(p.instrumentId, (approvedBy.get(p.instrumentId) ?? 0) + p.amount);
    let answering = 0;
    const checkInstrument = async (instrumentId: string, i: number) => {
      const expected = FUNDING_MINOR - (approvedBy.get(instrumentId) ?? 0);
      for (let n = 0; n < apis.length; n++) {
        const got = await request('GET', `/instruments/${instrumentId}`, n, Date.now() + 30_000);
        if (got?.status !== 200) {
          problems.push(`${instrumentId}: GET on api-${n + 1} answered ${got?.status ?? 'nothing'}`);
          continue;
        }
        if (n === i % apis.length) answering++;
        const balance = got.body.balance?.minorUnits;
        if (balance !== expected)
          problems.push(`${instrumentId}: workflow balance ${balance}, funding − approved = ${expected}`);
      }
      const fpsId = fpsInstrumentOf.get(instrumentId);
      if (!fpsId) return;
      const [prepaid, txs] = await Promise.all([ledger.prepaid(fpsId), ledger.byFpsInstrument(fpsId)]);
      if (prepaid?.availableBalance !== expected)
        problems.push(`${instrumentId}: FPS balance ${prepaid?.availableBalance}, funding − approved = ${expected}`);
      for (const t of txs) {
        if (t.operation === 'PAY' && t.status === 'Success' && !sent.has(t.callerReference))
          problems.push(`${instrumentId}: FPS charged ${t.callerReference} (${t.id}), which no client sent`);
      }
    };
    for (let i = 0; i < instruments.length; i += 10)
      await Promise.all(instruments.slice(i, i + 10).map((id, j) => checkInstrument(id, i + j)));

    // `npm run reconcile` against this cluster, three-way: workflows, the record, the FPS ledger.
    const reconcile = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/reconcile.ts', '--wait', '60000'], {
        cwd: root,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: cluster.address,
          TEMPORAL_NAMESPACE: cluster.namespace,
          SANDBOX_PUBLIC_URL: cluster.sandboxUrl,
          // The cluster's record (PostgreSQL), not this machine's default SQLite file.
          LEDGER_DATABASE_URL: cluster.ledgerUrl,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('close', (code) => resolve({ code, output }));
    });
    if (reconcile.code !== 0) problems.push(`npm run reconcile exited ${reconcile.code}:\n${reconcile.output}`);

    const approved = byOutcome('approved').length;
    const latencies = purchases
      .filter((p) => p.answeredAt)
      .map((p) => p.answeredAt! - p.issuedAt)
      .sort((a, b) => a - b);
    const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    console.log(
      `\n      ${purchases.length} purchases in ${loadSeconds.toFixed(0)} s (${(purchases.length / loadSeconds).toFixed(1)}/s) over ${INSTRUMENTS} instruments: ` +
        `${approved} approved, ${byOutcome('declined').length} declined, ${byOutcome('no_answer').length} unanswered; ` +
        `${purchases.filter((p) => p.failedOver).length} answered by the other API process, ${retries} client retries; ` +
        `latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${latencies.at(-1)} ms\n` +
        faults.map((f) => `        t=${f.at}s ${f.fault} (${f.seconds.toFixed(1)} s)`).join('\n') +
        `\n      ${answering}/${INSTRUMENTS} instruments answering; reconcile: ${reconcileSummary(reconcile.output)}` +
        `\n      whole test ${Math.round((Date.now() - suiteStarted) / 1000)} s\n`,
    );
    assert.ok(purchases.length >= 100, `the load ran (${purchases.length} purchases)`);
    assert.ok(approved > purchases.length * 0.9, `most purchases approved (${approved}/${purchases.length})`);
    assert.deepEqual(problems, []);
    assert.equal(answering, INSTRUMENTS);
  });
});
