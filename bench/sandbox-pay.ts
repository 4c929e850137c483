// Pay throughput of the FPS sandbox alone: N concurrent keep-alive clients send signed Pay
// requests (fps/signature.ts, POST, HmacSHA256) for T seconds against one funded prepaid instrument.
// `npm run bench:sandbox` runs it as part of the suite (bench/sandbox.ts); on its own:
//
//   npx tsx bench/sandbox-pay.ts [--concurrency 16] [--seconds 10] [--url http://127.0.0.1:8701]
//
// Without --url it starts its own sandbox process (temp data dir, loopback, free port, IPNs off)
// and removes it afterwards. Prints requests/s and p50/p90/p99 latency, checks the ledger moved
// exactly once per answered Pay.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../config';
import { buildCbuiUrl } from '../fps/cbui';
import { formatDecimal } from '../fps/money';
import { signQueryParams, toQueryString } from '../fps/signature';
import { cpuMs } from './lib/processes';
import { distribution, round, type Distribution } from './lib/common';
import { startSandboxProcess } from './lib/sandbox-process';

export interface SandboxPayOptions {
  concurrency: number;
  seconds: number;
  warmup: number;
  /** An already running sandbox; default: start one. */
  url?: string;
}

export interface SandboxPayResult {
  concurrency: number;
  seconds: number;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  latencyMs: Distribution;
  /** CPU ms the sandbox process used per Pay (own process only). */
  sandboxCpuMsPerPay?: number;
  ledger: { payments: number; availableBalance?: string; expected: string; ok: boolean };
}

export async function runSandboxPay(options: SandboxPayOptions): Promise<SandboxPayResult> {
  const concurrency = Math.max(1, options.concurrency);
  // Bounded on purpose: this is a loopback benchmark, not a soak test.
  const seconds = Math.min(120, Math.max(0.5, options.seconds));
  const own = options.url ? undefined : await startSandboxProcess();
  const url = (options.url ?? own!.url).replace(/\/$/, '');
  const target = new URL(url);
  const host = target.host;
  // One connection per client, kept alive for the whole run.
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: '/',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
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
    if (returned.searchParams.get('status') !== 'SC')
      throw new Error(`CBUI did not approve: HTTP ${cbui.status} ${returned.href}`);
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
    if (funded.status !== 200 || !funded.text.includes('<TransactionStatus>Success</TransactionStatus>'))
      throw new Error(`FundPrepaid: ${funded.text}`);

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
    for (let i = 0; i < options.warmup; i += concurrency)
      await Promise.all(Array.from({ length: Math.min(concurrency, options.warmup - i) }, pay));

    const latencies: number[] = [];
    let errors = 0;
    const cpuBefore = own ? cpuMs(own.pid) : NaN;
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
    const sandboxCpu = own ? cpuMs(own.pid) - cpuBefore : NaN;

    // Every answered Pay moved one cent, once.
    const balance = await call({ Action: 'GetPrepaidBalance', PrepaidInstrumentId: instrument });
    const available = /<AvailableBalance><CurrencyCode>USD<\/CurrencyCode><Value>([\d.]+)<\/Value>/.exec(
      balance.text,
    )?.[1];
    const expected = formatDecimal(100_000_000 - sequence, 'USD');
    return {
      concurrency,
      seconds: round(elapsed),
      requests: latencies.length,
      errors,
      requestsPerSecond: Math.round(latencies.length / elapsed),
      latencyMs: distribution(latencies),
      sandboxCpuMsPerPay: Number.isFinite(sandboxCpu) ? round(sandboxCpu / latencies.length, 3) : undefined,
      ledger: { payments: sequence, availableBalance: available, expected, ok: available === expected },
    };
  } finally {
    agent.destroy();
    await own?.stop();
  }
}

export function describeSandboxPay(r: SandboxPayResult): string {
  return (
    `sandbox Pay: ${r.requestsPerSecond} req/s over ${r.seconds} s with ${r.concurrency} keep-alive clients ` +
    `(${r.requests} requests, ${r.errors} errors); latency p50 ${r.latencyMs.p50} ms, p90 ${r.latencyMs.p90} ms, p99 ${r.latencyMs.p99} ms; ` +
    `ledger ${r.ledger.ok ? 'consistent' : `INCONSISTENT (${r.ledger.availableBalance} != ${r.ledger.expected})`}`
  );
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '10' },
      url: { type: 'string' },
      warmup: { type: 'string', default: '200' },
    },
  });
  runSandboxPay({
    concurrency: Number(values.concurrency),
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    url: values.url,
  }).then(
    (r) => {
      console.log(describeSandboxPay(r));
      process.exit(r.ledger.ok && r.errors === 0 ? 0 : 1);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
