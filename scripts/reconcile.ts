// `npm run reconcile`: compares every instrument workflow (Temporal), the record (LEDGER_DATABASE_URL)
// and the FPS ledger, and prints
// the discrepancies; exit code 0 = none, 1 = discrepancies, 2 = a side could not be read.
//   npm run reconcile                               all instruments, the sandbox of config (SANDBOX_PUBLIC_URL)
//   npm run reconcile -- --customer cust-1001       one customer's instruments
//   npm run reconcile -- --task-queue q --json      JSON report
//   npm run reconcile -- --wait 30000               re-run while workflows are still resolving operations
// What to do with a finding: docs/guarantees.md.
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { config } from '../config';
import { LedgerStore } from '../store/ledger';
import { openLedgerDb } from '../store/db';
import { formatReport, reconcileUntilSettled, SandboxLedger } from './lib/reconcile';

const USAGE = `usage: npm run reconcile -- [options]
  --sandbox-url URL     FPS sandbox (admin JSON); default SANDBOX_PUBLIC_URL (${config().sandbox.publicUrl})
  --customer ID         only this customer's instruments
  --task-queue NAME     only workflows on this task queue
  --query EXPR          extra visibility filter, ANDed
  --orphans all|listed  'all': every FPS money transaction must belong to a listed instrument
                        (default: all without a filter, listed with one)
  --ledger-url URL      the record; default LEDGER_DATABASE_URL (${config().ledger.url})
  --without-record      two-way only: workflows and FPS
  --wait MS             re-run for up to MS while only transient findings remain (default 0)
  --json                print the report as JSON
Temporal: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (default the local dev server).
Real FPS is not implemented as a source: see scripts/lib/reconcile.ts (LedgerSource) and docs/guarantees.md.`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'sandbox-url': { type: 'string' },
      customer: { type: 'string' },
      'task-queue': { type: 'string' },
      query: { type: 'string' },
      orphans: { type: 'string' },
      'ledger-url': { type: 'string' },
      'without-record': { type: 'boolean', default: false },
      wait: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.orphans !== undefined && values.orphans !== 'all' && values.orphans !== 'listed')
    throw new Error('--orphans is all or listed');
  const waitMs = Number(values.wait);
  if (!Number.isInteger(waitMs) || waitMs < 0) throw new Error('--wait takes milliseconds');

  const cfg = config();
  const address = cfg.temporal.address || `127.0.0.1:${cfg.temporal.devPort}`;
  const connection = await Connection.connect({
    address,
    tls: cfg.temporal.tls || undefined,
    apiKey: cfg.temporal.apiKey || undefined,
  });
  const store = values['without-record']
    ? undefined
    : new LedgerStore(await openLedgerDb(values['ledger-url'] ?? cfg.ledger.url));
  try {
    const client = new Client({ connection, namespace: cfg.temporal.namespace });
    const report = await reconcileUntilSettled({
      client,
      ledger: new SandboxLedger(values['sandbox-url'] ?? cfg.sandbox.publicUrl),
      store,
      customerId: values.customer,
      taskQueue: values['task-queue'],
      query: values.query,
      orphans: values.orphans as 'all' | 'listed' | undefined,
      waitMs,
      onProgress: values.json
        ? undefined
        : (done, total) => done % 50 === 0 && process.stderr.write(`  read ${done}/${total} workflows\n`),
    });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return report.ok ? 0 : 1;
  } finally {
    await store?.close();
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`reconcile: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
