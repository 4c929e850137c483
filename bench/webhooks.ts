// `npm run bench:webhooks`: what merchant webhooks cost, as same-run figures. One full stack
// (sandbox, worker and API processes) on a Temporal dev server, a real HTTP receiver (node:http,
// in this process), sequential purchases through the API in rounds that alternate between no merchant
// endpoint and one endpoint subscribed to every event ("*"), so machine drift hits both alike.
// Reported: purchase latency p50/p99 with and without the endpoint (and the ratio), and delivery
// latency from the event's createdAt (written with the operation's row, the transition) to the
// receiver's arrival time, p50/p99, with the deliverer's default poll (WEBHOOK_POLL_MS).
// The storefront's own endpoint (purchase.approved, purchase.declined) exists in both variants.
//   BENCH_ROUNDS (default 8) × BENCH_PER_ROUND (default 25) purchases per variant.
import { activeInstrument, call } from '../test/api/stack';
import { startProcessStack, type ProcessStack } from '../test/support/process-stack';
import { getTestTemporal } from '../test/support/temporal';
import { startWebhookReceiver } from '../test/support/webhook-receiver';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 25);

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { n: sorted.length, p50: pct(sorted, 50), p99: pct(sorted, 99) };
};

async function main(): Promise<void> {
  const temporal = await getTestTemporal();
  const receiver = await startWebhookReceiver();
  let stack: ProcessStack | undefined;
  try {
    stack = await startProcessStack({ name: 'bench-webhooks', apiEnv: { WEBHOOK_ALLOW_PRIVATE_URLS: 'true' } });
    const s = stack;
    const { instrumentId } = await activeInstrument(s, 'cust-bench-webhooks', {
      type: 'postpaid',
      creditLimit: '100000.00',
      globalAmountLimit: '100000.00',
      currency: 'USD',
    });
    const purchase: Record<'none' | 'everything', number[]> = { none: [], everything: [] };
    let n = 0;
    const buy = async (variant?: 'none' | 'everything') => {
      const started = performance.now();
      const answer = await call(s, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '0.01', currency: 'USD' },
        headers: { 'idempotency-key': `bench-wh-${n++}` },
      });
      if (answer.status !== 201) throw new Error(`purchase: ${answer.status} ${answer.text}`);
      if (variant) purchase[variant].push(performance.now() - started);
    };
    for (let w = 0; w < 10; w++) await buy(); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < PER_ROUND; k++) await buy('none');
      const created = await call(s, 'POST', '/webhook-endpoints', { body: { url: receiver.url, events: ['*'] } });
      if (created.status !== 201) throw new Error(`endpoint: ${created.status} ${created.text}`);
      const before = receiver.received.length;
      for (let k = 0; k < PER_ROUND; k++) await buy('everything');
      // Every approved purchase's event delivered before the endpoint goes (a deleted endpoint's
      // pending deliveries end unsent).
      for (let waited = 0; receiver.received.length < before + PER_ROUND && waited < 10_000; waited += 20)
        await new Promise((resolve) => setTimeout(resolve, 20));
      const removed = await call(s, 'DELETE', `/webhook-endpoints/${(created.body as { id: string }).id}`);
      if (removed.status !== 204 && removed.status !== 200) throw new Error(`delete: ${removed.status}`);
      process.stdout.write(`round ${r + 1}/${ROUNDS}: ${receiver.received.length} deliveries so far\n`);
    }
    const firstArrival = new Map<string, number>();
    for (const r of receiver.received)
      if (r.event && !firstArrival.has(r.event.id))
        firstArrival.set(r.event.id, r.receivedAt - Date.parse(r.event.createdAt));
    const delivery = stats([...firstArrival.values()]);
    const none = stats(purchase.none);
    const every = stats(purchase.everything);
    const byType = new Map<string, number>();
    for (const r of receiver.received) if (r.event) byType.set(r.event.type, (byType.get(r.event.type) ?? 0) + 1);
    const lines = [
      '| variant | purchases | p50 ms | p99 ms | p50 / none | p99 / none |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...(
        [
          ['no merchant endpoint', none],
          ['endpoint subscribed to *', every],
        ] as const
      ).map(
        ([name, x]) =>
          `| ${name} | ${x.n} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${(x.p50 / none.p50).toFixed(3)} | ${(x.p99 / none.p99).toFixed(3)} |`,
      ),
      '',
      `delivery latency (event createdAt → receiver), ${delivery.n} events: p50 ${delivery.p50.toFixed(0)} ms, p99 ${delivery.p99.toFixed(0)} ms`,
      `events received by type: ${[...byType].map(([t, c]) => `${t} ${c}`).join(', ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stack?.stop().catch(() => undefined);
    await receiver.stop();
    await temporal.server?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
