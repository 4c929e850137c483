// Purchase latency through the whole merchant API path: HTTP → Update → workflow → FPS Pay at the
// sandbox → Update result → HTTP. Against a running stack (`npm start`, or docker compose):
//
//   npx tsx bench/api-purchases.ts [--requests 300] [--api http://127.0.0.1:3000] [--key dev-merchant-api-key]
//
// Creates a prepaid instrument, approves it at the sandbox CBUI non-interactively
// (X-Sandbox-Decision: approve), then sends sequential $0.01 purchases, each with its own
// Idempotency-Key, and prints p50/p90/p99. Results go to bench/results/api-purchases-<time>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { config } from '../config';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '10' },
    api: { type: 'string', default: config().api.publicUrl },
    key: { type: 'string', default: config().api.apiKeys[0] },
    funding: { type: 'string', default: '500.00' },
  },
});
const requests = Number(values.requests);
const warmup = Number(values.warmup);
const api = values.api!.replace(/\/$/, '');
const headers = { 'content-type': 'application/json', 'x-api-key': values.key! };

async function json(method: string, url: string, body?: unknown, extra: Record<string, string> = {}) {
  const response = await fetch(`${api}${url}`, { method, headers: { ...headers, ...extra }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function activePrepaid(): Promise<string> {
  const created = await json('POST', `/customers/bench-${Date.now()}/instruments`, { type: 'prepaid', fundingAmount: values.funding, currency: 'USD', description: 'api-purchases benchmark' });
  if (created.status !== 201) throw new Error(`create instrument: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  const { instrumentId, authorizationUrl } = created.body;
  const cbui = await fetch(authorizationUrl, { headers: { 'x-sandbox-decision': 'approve' }, redirect: 'manual' });
  const returnUrl = cbui.headers.get('location');
  if (cbui.status !== 302 || !returnUrl) throw new Error(`sandbox CBUI: HTTP ${cbui.status}`);
  const returned = await fetch(returnUrl, { redirect: 'manual' });
  if (returned.status !== 303) throw new Error(`return URL: HTTP ${returned.status} ${await returned.text()}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = await json('GET', `/instruments/${instrumentId}`);
    if (got.body?.state === 'active' && got.body.pending.length === 0) return instrumentId;
    if (Date.now() > deadline) throw new Error(`instrument ${instrumentId} not active: ${JSON.stringify(got.body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (ms: number) => Math.round(ms * 10) / 10;

async function main(): Promise<void> {
  const ready = await fetch(`${api}/readyz`).catch(() => undefined);
  if (!ready?.ok) throw new Error(`no ready merchant API at ${api} (start the stack with \`npm start\`)`);
  const instrumentId = await activePrepaid();
  console.log(`instrument ${instrumentId} funded with $${values.funding}; ${warmup} warm-up + ${requests} purchases`);

  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const run = `b${Date.now().toString(36)}`;
  for (let i = 0; i < warmup + requests; i++) {
    const started = performance.now();
    const answer = await json('POST', `/instruments/${instrumentId}/purchases`, { amount: '0.01', currency: 'USD' }, { 'idempotency-key': `${run}-${i}` });
    const ms = performance.now() - started;
    if (answer.status !== 201) throw new Error(`purchase ${i}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
    if (i >= warmup) {
      latencies.push(ms);
      statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
    }
  }

  const sorted = [...latencies].sort((a, b) => a - b);
  const result = {
    benchmark: 'api-purchases',
    at: new Date().toISOString(),
    api,
    host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    requests,
    statuses,
    ms: {
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      min: round(sorted[0]),
      max: round(sorted[sorted.length - 1]),
      mean: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
    },
    throughputPerSecond: round(1000 / (latencies.reduce((a, b) => a + b, 0) / latencies.length)),
  };
  console.log(`POST /instruments/:id/purchases, ${requests} sequential: p50 ${result.ms.p50} ms, p90 ${result.ms.p90} ms, p99 ${result.ms.p99} ms (min ${result.ms.min}, max ${result.ms.max})`);
  const dir = path.join(config().root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `api-purchases-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
