// Real processes (sandbox, worker, API), real purchases through the API: each /metrics endpoint's
// counters move by exactly what happened (3 approved + 1 declined purchase, their FPS Pay calls, the
// CBUI return's verified signature), and the business gauges read the record.
import assert from 'node:assert/strict';
import { activeInstrument, call, until } from '../api/stack';
import { startWebhookReceiver } from '../support/webhook-receiver';
import { startProcessStack, type ProcessStack } from '../support/process-stack';
import { freePorts } from '../support/processes';

/** Sample values of one metric from a Prometheus text exposition, keyed by their label set. */
function samples(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) found.set(m[2] ?? '{}', Number(m[3]));
  }
  return found;
}

/** The value of `name` whose labels include every `labels` pair (0 when absent). */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [set, v] of samples(text, name)) {
    if (Object.entries(labels).every(([k, want]) => set.includes(`${k}="${want}"`))) total += v;
  }
  return total;
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url} answered ${response.status}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return response.text();
}

describe('metrics (API and worker /metrics after real purchases)', function () {
  this.timeout(240_000);
  let stack: ProcessStack;
  let workerMetricsUrl: string;

  before(async () => {
    const [workerPort] = await freePorts(1);
    workerMetricsUrl = `http://127.0.0.1:${workerPort}/metrics`;
    stack = await startProcessStack({
      name: 'obs-metrics',
      workerEnv: { WORKER_METRICS_PORT: String(workerPort) },
      apiEnv: { METRICS_STORE_REFRESH_MS: '0' },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  it('counts purchases by outcome and decline code, FPS calls, callbacks, and reads the gauges', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-metrics', {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    const route = '/instruments/:instrumentId/purchases';
    const api0 = await scrape(`${stack.apiUrl}/metrics`);
    const worker0 = await scrape(workerMetricsUrl);

    const buy = (amount: string, key: string) =>
      call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount, currency: 'USD' },
        headers: { 'idempotency-key': key },
      });
    for (const [i, amount] of ['1.00', '2.00', '3.00'].entries())
      assert.equal((await buy(amount, `m-ok-${i}`)).status, 201);
    const declined = await buy('0.51', 'm-declined');
    assert.equal(declined.status, 402);

    const api1 = await scrape(`${stack.apiUrl}/metrics`);
    const delta = (name: string, labels: Record<string, string>) =>
      value(api1, name, labels) - value(api0, name, labels);
    assert.equal(delta('purchases_total', { outcome: 'approved' }), 3);
    assert.equal(delta('purchases_total', { outcome: 'declined', decline_code: 'TransactionDenied' }), 1);
    assert.equal(delta('purchases_total', { outcome: 'pending' }), 0);
    assert.equal(delta('http_requests_total', { method: 'POST', route, status: '201' }), 3);
    assert.equal(delta('http_requests_total', { method: 'POST', route, status: '402' }), 1);
    assert.equal(delta('http_request_duration_seconds_count', { method: 'POST', route, status: '201' }), 3);
    // activeInstrument's CBUI return was verified before the first scrape: exactly one in all.
    assert.equal(value(api1, 'fps_callbacks_total', { kind: 'return', result: 'verified' }), 1);
    assert.equal(value(api1, 'fps_callbacks_total', { result: 'refused' }), 0);
    // The record: 6.00 of debt (the declined purchase moved nothing), nothing pending.
    assert.equal(value(api1, 'outstanding_debt_minor_units', { currency: 'USD' }), 600);
    assert.equal(value(api1, 'pending_operations'), 0);
    assert.ok(samples(api1, 'instruments_open').size === 3, 'instruments_open has one sample per type');

    const worker1 = await scrape(workerMetricsUrl);
    const wdelta = (name: string, labels: Record<string, string>) =>
      value(worker1, name, labels) - value(worker0, name, labels);
    assert.equal(wdelta('fps_calls_total', { action: 'Pay', http_status: '200', error_code: '' }), 3);
    assert.equal(wdelta('fps_calls_total', { action: 'Pay', error_code: 'TransactionDenied' }), 1);
    assert.equal(wdelta('fps_call_duration_seconds_count', { action: 'Pay' }), 4);
    assert.equal(wdelta('worker_activities_total', { activity: 'pay', outcome: 'Success' }), 3);
    // The Temporal core's runtime metrics come in the same answer.
    assert.match(worker1, /^temporal_\w+/m, 'the worker exposes the SDK core metrics');
  });

  it('counts webhook attempts: one refused (retried) and each event delivered, backlog back to 0', async () => {
    const receiver = await startWebhookReceiver();
    receiver.respond = (_request, n) => (n === 1 ? 500 : 200);
    try {
      const created = await call(stack, 'POST', '/webhook-endpoints', { body: { url: receiver.url, events: ['*'] } });
      assert.equal(created.status, 201, created.text);
      const api0 = await scrape(`${stack.apiUrl}/metrics`);
      const { instrumentId } = await activeInstrument(stack, 'cust-metrics-hooks', {
        type: 'postpaid',
        creditLimit: '50.00',
        globalAmountLimit: '500.00',
        currency: 'USD',
      });
      const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '1.00', currency: 'USD' },
        headers: { 'idempotency-key': 'm-hook-1' },
      });
      assert.equal(bought.status, 201);
      let api1 = '';
      await until('every event delivered', async () => {
        api1 = await scrape(`${stack.apiUrl}/metrics`);
        const delivered = new Set(receiver.received.filter((r) => r.status === 200).map((r) => r.event?.id));
        const events = new Set(receiver.received.map((r) => r.event?.id));
        return events.size > 0 && delivered.size === events.size && value(api1, 'webhook_deliveries_backlog') === 0;
      });
      // This endpoint's attempts only: earlier suites' endpoints may still be retrying.
      const endpoint = (created.body as { id: string }).id;
      const delta = (labels: Record<string, string>) =>
        value(api1, 'webhook_attempts_total', { endpoint, ...labels }) -
        value(api0, 'webhook_attempts_total', { endpoint, ...labels });
      assert.equal(delta({ result: 'pending' }), 1, 'the refused attempt is counted once, as to be retried');
      assert.equal(delta({ result: 'delivered' }), receiver.received.filter((r) => r.status === 200).length);
      assert.equal(delta({ result: 'failed' }), 0);
    } finally {
      await receiver.stop();
    }
  });

  it('serves the API /metrics without an API key (Prometheus scrapes without one)', async () => {
    const response = await fetch(`${stack.apiUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^# HELP http_requests_total/m);
  });
});
