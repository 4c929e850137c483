// `npm run reconcile:metrics -- [reconcile options]`: runs `npm run reconcile` (scripts/reconcile.ts,
// with --json) as it is, prints its report, and pushes its result to a Prometheus Pushgateway
// (RECONCILE_PUSHGATEWAY_URL, or --pushgateway URL) under job="reconcile", so the
// ReconciliationDiscrepancies alert has a gauge to read. Meant for a CronJob/systemd timer; a
// reconciliation reads every workflow, so it is never run on a scrape. Exit code: reconcile's
// (0 none, 1 discrepancies, 2 a side could not be read), or 3 when the push failed.
//
// A run with a report replaces the whole group (PUT): kinds no longer found disappear. A run
// without one (exit 2) only updates reconciliation_up and the last-run time (POST), so the last
// known discrepancies stay visible and alerting.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Gauge, Pushgateway, Registry } from 'prom-client';
import { formatReport, type ReconcileReport } from '../scripts/lib/reconcile';

export const RECONCILE_JOB = 'reconcile';

/** The metrics of one run (a registry of its own: no process metrics, they would mean nothing here). */
export function reconcileRegistry(report: ReconcileReport | undefined, finishedAt: Date): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  gauge(
    'reconciliation_up',
    '1: the last reconciliation read every side and reported; 0: a side could not be read',
  ).set(report ? 1 : 0);
  gauge('reconciliation_last_run_timestamp_seconds', 'When the last reconciliation finished (epoch seconds)').set(
    finishedAt.getTime() / 1000,
  );
  if (!report) return registry;
  gauge(
    'reconciliation_last_success_timestamp_seconds',
    'When the last reconciliation that produced a report finished (epoch seconds)',
  ).set(finishedAt.getTime() / 1000);
  gauge(
    'reconciliation_discrepancies',
    'Discrepancies the last reconciliation found between workflows, the record and FPS (0: none)',
  ).set(report.discrepancies.length);
  const byKind = gauge(
    'reconciliation_discrepancies_by_kind',
    'Discrepancies of the last reconciliation by kind (docs/guarantees.md); only kinds found',
    ['kind'],
  );
  for (const d of report.discrepancies) byKind.inc({ kind: d.kind });
  gauge('reconciliation_duration_seconds', 'How long the last reconciliation took').set(report.ms / 1000);
  const instruments = gauge('reconciliation_instruments', 'Instruments the last reconciliation compared, by type', [
    'type',
  ]);
  for (const [type, counts] of Object.entries(report.byType)) instruments.set({ type }, counts.instruments);
  return registry;
}

/** Runs scripts/reconcile.ts --json with `args`; its report, or undefined when it had none (exit 2). */
async function runReconcile(args: string[]): Promise<{ code: number; report?: ReconcileReport; stderr: string }> {
  const script = path.join(__dirname, '..', 'scripts', 'reconcile.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 2)));
  const stderr = Buffer.concat(err).toString('utf8');
  if (code !== 0 && code !== 1) return { code, stderr };
  return { code, report: JSON.parse(Buffer.concat(out).toString('utf8')) as ReconcileReport, stderr };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let url = process.env.RECONCILE_PUSHGATEWAY_URL ?? '';
  const at = args.indexOf('--pushgateway');
  if (at >= 0) {
    url = args[at + 1] ?? '';
    args.splice(at, 2);
  }
  const json = args.includes('--json');
  const rest = args.filter((a) => a !== '--json');
  if (!url) throw new Error('set RECONCILE_PUSHGATEWAY_URL or pass --pushgateway URL');

  const { code, report, stderr } = await runReconcile(rest);
  process.stderr.write(stderr);
  if (report) process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);

  const gateway = new Pushgateway(url, { timeout: 10_000 }, reconcileRegistry(report, new Date()));
  try {
    // With a report: replace the group. Without: update up and the time only, keep the last findings.
    await (report ? gateway.push({ jobName: RECONCILE_JOB }) : gateway.pushAdd({ jobName: RECONCILE_JOB }));
  } catch (e) {
    process.stderr.write(`reconcile:metrics: push to ${url} failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return 3;
  }
  return code;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`reconcile:metrics: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
