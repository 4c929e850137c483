// `npm run reconcile:metrics` as a real process against a real stack (sandbox, worker, API) and an
// in-process Pushgateway stand-in (it records what is pushed): a clean reconciliation pushes 0
// discrepancies; after a Pay this test makes at the sandbox behind the workflow's back, the pushed
// gauge equals the report's count with its kinds; a run that cannot read FPS pushes up=0 only and
// keeps the last findings (POST, not PUT).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { config, DEV_ACCESS_KEY_ID } from '../../config';
import { FpsClient } from '../../fps/client';
import { RECONCILE_JOB } from '../../observability/reconcile-job';
import type { ReconcileReport } from '../../scripts/lib/reconcile';
import { activeInstrument, call, sandboxAdmin } from '../api/stack';
import { startProcessStack, type ProcessStack } from '../support/process-stack';
import { freePorts } from '../support/processes';

interface Push {
  method: string;
  url: string;
  body: string;
}

async function startGateway(): Promise<{ url: string; pushes: Push[]; close(): Promise<void> }> {
  const pushes: Push[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      pushes.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pushes,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A sample's value in a pushed exposition (undefined when absent). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('reconcile:metrics (the reconciliation result pushed for the alert)', function () {
  this.timeout(240_000);
  let stack: ProcessStack;
  let gateway: Awaited<ReturnType<typeof startGateway>>;

  before(async () => {
    gateway = await startGateway();
    stack = await startProcessStack({ name: 'obs-reconcile' });
  });
  after(async () => {
    await stack?.stop();
    await gateway?.close();
  });

  const runJob = async (...args: string[]) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(config().root, 'observability', 'reconcile-job.ts'),
        '--pushgateway',
        gateway.url,
        '--task-queue',
        stack.taskQueue,
        '--ledger-url',
        stack.env.LEDGER_DATABASE_URL,
        '--json',
        ...args,
      ],
      { env: { ...process.env, ...stack.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const stdout = Buffer.concat(out).toString('utf8');
    return { code, stdout, stderr: Buffer.concat(err).toString('utf8') };
  };

  it('pushes 0, then exactly the discrepancies a Pay behind the workflow’s back causes, then up=0 only', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-reconcile-metrics', {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount: '1.00', currency: 'USD' },
      headers: { 'idempotency-key': 'rm-1' },
    });
    assert.equal(bought.status, 201, bought.text);

    const clean = await runJob('--sandbox-url', stack.sandboxUrl, '--wait', '20000');
    assert.equal(clean.code, 0, `${clean.stdout}\n${clean.stderr}`);
    assert.equal(gateway.pushes.length, 1);
    const first = gateway.pushes[0];
    assert.equal(first.method, 'PUT', 'a run with a report replaces the group');
    assert.equal(first.url, `/metrics/job/${RECONCILE_JOB}`);
    assert.equal(sample(first.body, 'reconciliation_discrepancies'), 0);
    assert.equal(sample(first.body, 'reconciliation_up'), 1);
    assert.equal(sample(first.body, 'reconciliation_instruments{type="postpaid"}'), 1);
    assert.ok(!first.body.includes('reconciliation_discrepancies_by_kind{'), 'no kind found, none listed');

    // A Pay at FPS under this instrument's CallerReference prefix that no workflow asked for.
    const { transactions } = await sandboxAdmin<{ transactions: Array<{ tokenId: string }> }>(
      stack,
      `/admin/transactions?callerReference=${encodeURIComponent(bought.body.callerReference)}`,
    );
    const fps = new FpsClient({
      endpoint: `${stack.sandboxUrl}/`,
      accessKeyId: DEV_ACCESS_KEY_ID,
      secretKey: stack.fpsSecretKey,
    });
    const rogue = await fps.call('Pay', {
      senderTokenId: transactions[0].tokenId,
      transactionAmount: { amount: 200, currency: 'USD' },
      callerReference: `${instrumentId}:pay:rogue-1`,
    });
    assert.equal(rogue.transactionStatus, 'Success');

    const found = await runJob('--sandbox-url', stack.sandboxUrl);
    assert.equal(found.code, 1, found.stderr);
    const report = JSON.parse(found.stdout) as ReconcileReport;
    assert.ok(report.discrepancies.length > 0);
    assert.ok(report.discrepancies.every((d) => d.instrumentId === undefined || d.instrumentId === instrumentId));
    const second = gateway.pushes[1];
    assert.equal(second.method, 'PUT');
    assert.equal(sample(second.body, 'reconciliation_discrepancies'), report.discrepancies.length);
    const kinds = new Map<string, number>();
    for (const d of report.discrepancies) kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
    assert.ok(kinds.has('unrecorded_fps_transaction'), [...kinds.keys()].join(', '));
    for (const [kind, n] of kinds)
      assert.equal(sample(second.body, `reconciliation_discrepancies_by_kind{kind="${kind}"}`), n, kind);

    // FPS unreachable: no report, exit 2; only up and the run's time are pushed (POST keeps the rest).
    const [deadPort] = await freePorts(1);
    const failed = await runJob('--sandbox-url', `http://127.0.0.1:${deadPort}`);
    assert.equal(failed.code, 2, failed.stderr);
    const third = gateway.pushes[2];
    assert.equal(third.method, 'POST', 'a run without a report adds to the group');
    assert.equal(sample(third.body, 'reconciliation_up'), 0);
    assert.ok(sample(third.body, 'reconciliation_last_run_timestamp_seconds')! > 0);
    assert.equal(sample(third.body, 'reconciliation_discrepancies'), undefined, 'the last findings stay as pushed');
    assert.equal(gateway.pushes.length, 3);
  });
});
