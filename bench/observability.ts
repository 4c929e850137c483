// `npm run bench:observability`: what metrics and tracing cost on the purchase path, as same-run
// ratios. Three full stacks (sandbox, worker, API processes) on one Temporal dev server: "off"
// (METRICS_ENABLED=false, no OTLP endpoint), "metrics" (the default) and "tracing" (metrics plus
// OTLP/HTTP export to a local receiver that accepts and drops spans). Sequential purchases
// through each API, interleaved in rounds so machine drift hits all three alike.
//   BENCH_ROUNDS (default 10) × BENCH_PER_ROUND (default 20) purchases per variant.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { activeInstrument, call } from '../test/api/stack';
import { startProcessStack, type ProcessStack } from '../test/support/process-stack';
import { getTestTemporal } from '../test/support/temporal';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 20);

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main(): Promise<void> {
  let spansReceived = 0;
  const receiver = http.createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      spansReceived++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const otlp = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const variants: Array<{ name: string; env: Record<string, string> }> = [
    { name: 'off', env: { METRICS_ENABLED: 'false' } },
    { name: 'metrics', env: { WORKER_METRICS_PORT: '0' } },
    { name: 'tracing', env: { WORKER_METRICS_PORT: '0', OTEL_EXPORTER_OTLP_ENDPOINT: otlp } },
  ];
  const temporal = await getTestTemporal();
  const stacks: ProcessStack[] = [];
  try {
    for (const v of variants)
      stacks.push(await startProcessStack({ name: `bench-obs-${v.name}`, workerEnv: v.env, apiEnv: v.env }));
    const instruments = await Promise.all(
      stacks.map((s) =>
        activeInstrument(s, 'cust-bench-obs', {
          type: 'postpaid',
          creditLimit: '100000.00',
          globalAmountLimit: '100000.00',
          currency: 'USD',
        }),
      ),
    );
    const samples: number[][] = variants.map(() => []);
    let n = 0;
    const buy = async (i: number, record: boolean) => {
      const started = performance.now();
      const answer = await call(stacks[i], 'POST', `/instruments/${instruments[i].instrumentId}/purchases`, {
        body: { amount: '0.01', currency: 'USD' },
        headers: { 'idempotency-key': `bench-obs-${n++}` },
      });
      if (answer.status !== 201) throw new Error(`purchase: ${answer.status} ${answer.text}`);
      if (record) samples[i].push(performance.now() - started);
    };
    for (let i = 0; i < variants.length; i++) for (let w = 0; w < 10; w++) await buy(i, false); // warm-up
    for (let r = 0; r < ROUNDS; r++)
      for (let i = 0; i < variants.length; i++) for (let k = 0; k < PER_ROUND; k++) await buy(i, true);
    const stats = samples.map((s) => {
      const sorted = [...s].sort((a, b) => a - b);
      return { p50: pct(sorted, 50), p99: pct(sorted, 99), n: s.length };
    });
    const lines = [
      '| variant | purchases | p50 ms | p99 ms | p50 / off | p99 / off |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...variants.map(
        (v, i) =>
          `| ${v.name} | ${stats[i].n} | ${stats[i].p50.toFixed(2)} | ${stats[i].p99.toFixed(2)} | ${(stats[i].p50 / stats[0].p50).toFixed(3)} | ${(stats[i].p99 / stats[0].p99).toFixed(3)} |`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n(OTLP export requests received: ${spansReceived})\n`);
  } finally {
    for (const s of stacks) await s.stop().catch(() => undefined);
    await temporal.server?.stop();
    receiver.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
