// Pay throughput of the FPS sandbox alone: N concurrent keep-alive clients send signed Pay
// requests (fps/signature.ts, POST, HmacSHA256) for T seconds against one funded prepaid instrument.
//
//   npx tsx bench/sandbox-pay.ts [--concurrency 16] [--seconds 10] [--url http://127.0.0.1:8701]
//
// Without --url it starts its own sandbox process (temp data dir, loopback, free port, IPNs off)
// and removes it afterwards. Prints requests/s and p50/p90/p99 latency, checks the ledger moved
// exactly once per answered Pay, and writes bench/results/sandbox-pay-<time>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { config, DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../config';
import { buildCbuiUrl } from '../fps/cbui';
import { formatDecimal } from '../fps/money';
import { signQueryParams, toQueryString } from '../fps/signature';
import { startSandboxProcess } from './lib/sandbox-process';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    url: { type: 'string' },
    warmup: { type: 'string', default: '200' },
  },
});
const concurrency = Math.max(1, Number(values.concurrency));
// Bounded on purpose: this is a loopback smoke benchmark, not a soak test.
const seconds = Math.min(20, Math.max(1, Number(values.seconds)));

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const round = (ms: number) => Math.round(ms * 100) / 100;

async function main(): Promise<void> {
  const own = values.url ? undefined : await startSandboxProcess();
  const url = (values.url ?? own!.url).replace(/\/$/, '');
  const host = new URL(url).host;
  // One connection per client, kept alive for the whole run.
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const target = new URL(url);
      const req = http.request(
        { host: target.hostname, port: target.port, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  try {
    // A prepaid instrument with room for every payment: CBUI approval, then FundPrepaid.
    const reference = `bench-${Date.now()}`;
    const cbui = await fetch(
      buildCbuiUrl({
        endpoint: `${url}/cobranded-ui/actions/start`,
        callerKey: DEV_ACCESS_KEY_ID,
        secretKey: DEV_SECRET_KEY,
        returnUrl: 'http://127.0.0.1:9/return',
        pipeline: 'SetupPrepaid',
        callerReferenceSender: `${reference}:sender`,
        callerReferenceFunding: `${reference}:funding`,
        fundingAmount: { amount: 100_000_000, currency: 'USD' },
      }),
      { headers: { 'x-sandbox-decision': 'approve' }, redirect: 'manual' },
    );
    const returned = new URL(cbui.headers.get('location') ?? 'http://invalid/');
    if (returned.searchParams.get('status') !== 'SC') throw new Error(`CBUI did not approve: HTTP ${cbui.status} ${returned.href}`);
    const instrument = returned.searchParams.get('prepaidInstrumentID')!;
    const senderToken = returned.searchParams.get('prepaidSenderTokenID')!;

    const call = async (params: Record<string, string>) => {
      const signed = signQueryParams(
        { ...params, AWSAccessKeyId: DEV_ACCESS_KEY_ID, Timestamp: new Date().toISOString(), Version: '2008-09-17' },
        { method: 'POST', host, path: '/' },
        DEV_SECRET_KEY,
      );
      return post(toQueryString(signed));
    };
    const funded = await call({
      Action: 'FundPrepaid',
      PrepaidInstrumentId: instrument,
      SenderTokenId: returned.searchParams.get('fundingTokenID')!,
      'FundingAmount.Value': '1000000.00',
      'FundingAmount.CurrencyCode': 'USD',
      CallerReference: `${reference}:fund`,
    });
    if (funded.status !== 200 || !funded.text.includes('<TransactionStatus>Success</TransactionStatus>')) throw new Error(`FundPrepaid: ${funded.text}`);

    let sequence = 0;
    const pay = () =>
      call({
        Action: 'Pay',
        SenderTokenId: senderToken,
        'TransactionAmount.Value': '0.01',
        'TransactionAmount.CurrencyCode': 'USD',
        CallerReference: `${reference}:pay:${sequence++}`,
      });

    // Warm-up: JIT, connections, SQLite page cache.
    const warmup = Number(values.warmup);
    for (let i = 0; i < warmup; i += concurrency) await Promise.all(Array.from({ length: Math.min(concurrency, warmup - i) }, pay));

    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          const { status, text } = await pay();
          latencies.push(performance.now() - t0);
          if (status !== 200 || !text.includes('<TransactionStatus>Success</TransactionStatus>')) errors++;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);

    // Every answered Pay moved one cent, once.
    const balance = await call({ Action: 'GetPrepaidBalance', PrepaidInstrumentId: instrument });
    const available = /<AvailableBalance><CurrencyCode>USD<\/CurrencyCode><Value>([\d.]+)<\/Value>/.exec(balance.text)?.[1];
    const expectedDecimal = formatDecimal(100_000_000 - sequence, 'USD');
    const ledgerOk = available === expectedDecimal;

    const result = {
      benchmark: 'sandbox-pay',
      at: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      concurrency,
      seconds: round(elapsed),
      requests: latencies.length,
      errors,
      requestsPerSecond: Math.round(latencies.length / elapsed),
      latencyMs: { p50: round(percentile(latencies, 50)), p90: round(percentile(latencies, 90)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0) },
      ledger: { payments: sequence, availableBalance: available, expected: expectedDecimal, ok: ledgerOk },
    };
    console.log(
      `sandbox Pay: ${result.requestsPerSecond} req/s over ${result.seconds} s with ${concurrency} keep-alive clients ` +
        `(${result.requests} requests, ${errors} errors); latency p50 ${result.latencyMs.p50} ms, p90 ${result.latencyMs.p90} ms, p99 ${result.latencyMs.p99} ms; ` +
        `ledger ${ledgerOk ? 'consistent' : `INCONSISTENT (${available} != ${expectedDecimal})`}`,
    );
    const dir = path.join(config().root, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `sandbox-pay-${result.at.replace(/[:.]/g, '-')}.json`), `${JSON.stringify(result, null, 2)}\n`);
    if (!ledgerOk || errors > 0) process.exitCode = 1;
  } finally {
    agent.destroy();
    await own?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
