// Real processes (sandbox, worker, API), real purchases through the API: each /metrics endpoint's
// counters move by exactly what happened (3 approved + 1 declined purchase, their FPS Pay calls, the
// CBUI return's verified signature), the business gauges read the record and visibility, the API's
// busy-Update retries match its log, and the sandbox counts its own requests and IPNs.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
      sandboxEnv: { SANDBOX_IPN_MAX_ATTEMPTS: '3' },
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
    // Visibility counts of this API's task queue (this stack's alone), by type and state: every
    // pair of the machines is a sample. This test's instrument is the stack's first one.
    assert.equal(samples(api1, 'instruments_open').size, 30, 'one sample per (type, state) of the machines');
    await until('visibility counts the active postpaid instrument', async () => {
      const text = await scrape(`${stack.apiUrl}/metrics`);
      return value(text, 'instruments_open', { type: 'postpaid', state: 'active' }) === 1 && text;
    });
    const waiting = await call(stack, 'POST', '/customers/cust-metrics/instruments', {
      body: { type: 'prepaid', fundingAmount: '5.00', currency: 'USD' },
    });
    assert.equal(waiting.status, 201, waiting.text);
    const states = await until('visibility counts the instrument awaiting authorization', async () => {
      const text = await scrape(`${stack.apiUrl}/metrics`);
      return value(text, 'instruments_open', { type: 'prepaid', state: 'awaitingAuthorization' }) === 1 && text;
    });
    assert.equal(value(states, 'instruments_open'), 2, 'nothing else is open on this stack');

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

  it('counts the API’s busy-Update retries: exactly the retries its log reports', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-metrics-busy', {
      type: 'postpaid',
      creditLimit: '500.00',
      globalAmountLimit: '5000.00',
      currency: 'USD',
    });
    const logFrom = statSync(stack.api.logFile).size;
    const api0 = await scrape(`${stack.apiUrl}/metrics`);
    // A burst on one instrument: Updates race with the workflow task running each local activity;
    // the server drops some unprocessed (or refuses too many in flight) and the API sends them again.
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
          body: { amount: '1.00', currency: 'USD' },
          headers: { 'idempotency-key': `m-busy-${i}` },
        }),
      ),
    );
    for (const answer of answers) assert.ok([201, 503].includes(answer.status), `${answer.status} ${answer.text}`);
    const api1 = await scrape(`${stack.apiUrl}/metrics`);
    const logged = readFileSync(stack.api.logFile, 'utf8')
      .slice(logFrom)
      .split('\n')
      .filter((line) => line.includes('update refused, retrying with the same id'));
    const delta = (reason: string) =>
      value(api1, 'update_busy_retries_total', { reason }) - value(api0, 'update_busy_retries_total', { reason });
    assert.equal(
      delta('resource_exhausted') + delta('unprocessed'),
      logged.length,
      'one count per retry the API logged',
    );
    assert.equal(
      delta('unprocessed'),
      logged.filter((line) => line.includes('not processed by a workflow task')).length,
    );
    console.log(`      (busy retries in the burst: ${logged.length})`);
  });

  it('serves the sandbox’s /metrics: FPS requests by action and status, IPNs sent and failed, pending', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-metrics-sandbox', {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    const sandbox = `${stack.sandboxUrl}/metrics`;
    const s0 = await scrape(sandbox);
    const api0 = await scrape(`${stack.apiUrl}/metrics`);
    const worker0 = await scrape(workerMetricsUrl);
    const buy = (amount: string, key: string) =>
      call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount, currency: 'USD' },
        headers: { 'idempotency-key': key },
      });
    assert.equal((await buy('1.00', 'm-sb-ok-1')).status, 201);
    assert.equal((await buy('2.00', 'm-sb-ok-2')).status, 201);
    assert.equal((await buy('0.51', 'm-sb-denied')).status, 402);
    // Pending (.13), resolved after SANDBOX_PENDING_DELAY_MS and announced by one IPN.
    assert.equal((await buy('1.13', 'm-sb-pending')).status, 202);
    await until('the pending purchase is resolved', async () => {
      const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
      return got.body.pending.length === 0;
    });
    let s1 = '';
    await until('the sandbox holds nothing Pending and has delivered the IPN', async () => {
      s1 = await scrape(sandbox);
      return (
        value(s1, 'sandbox_pending_transactions') === 0 &&
        value(s1, 'sandbox_ipn_attempts_total', { result: 'delivered' }) -
          value(s0, 'sandbox_ipn_attempts_total', { result: 'delivered' }) >=
          1
      );
    });
    const d = (name: string, labels: Record<string, string>) => value(s1, name, labels) - value(s0, name, labels);
    const pay = { action: 'Pay' };
    assert.equal(d('sandbox_fps_requests_total', { ...pay, status: '200', transaction_status: 'Success' }), 2);
    assert.equal(d('sandbox_fps_requests_total', { ...pay, status: '400', error_code: 'TransactionDenied' }), 1);
    assert.equal(d('sandbox_fps_requests_total', { ...pay, status: '200', transaction_status: 'Pending' }), 1);
    assert.equal(d('sandbox_fps_requests_total', pay), 4, 'four Pay requests in all');
    assert.equal(d('sandbox_fps_request_duration_seconds_count', pay), 4);
    assert.equal(
      d('sandbox_ipn_attempts_total', { notification_type: 'TransactionStatus', result: 'delivered' }),
      1,
      'the pending purchase’s IPN, delivered at the first attempt',
    );
    assert.equal(value(s1, 'sandbox_ipn_deliveries', { status: 'pending' }), 0);
    const api1 = await scrape(`${stack.apiUrl}/metrics`);
    const resolved = (text: string, source: string) =>
      value(text, 'pending_resolutions_total', { source, status: 'Success' });
    assert.equal(resolved(api1, 'ipn') - resolved(api0, 'ipn'), 1, 'the pending purchase was resolved by its IPN');

    // IPNs the merchant refuses: retried, then given up after SANDBOX_IPN_MAX_ATTEMPTS (3).
    const refused: string[] = [];
    const refuser = http.createServer((req, res) => {
      req.resume();
      refused.push(req.url ?? '');
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve));
    const setIpnUrl = (url: string) =>
      fetch(`${stack.sandboxUrl}/admin/ipn`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url }),
      }).then((r) => assert.equal(r.status, 200));
    try {
      await setIpnUrl(`http://127.0.0.1:${(refuser.address() as AddressInfo).port}/fps/ipn`);
      const s2 = await scrape(sandbox);
      assert.equal((await buy('1.13', 'm-sb-refused')).status, 202);
      let s3 = '';
      await until('the refused IPN is given up', async () => {
        s3 = await scrape(sandbox);
        return (
          value(s3, 'sandbox_ipn_attempts_total', { result: 'failed' }) >
          value(s2, 'sandbox_ipn_attempts_total', { result: 'failed' })
        );
      });
      const d3 = (labels: Record<string, string>) =>
        value(s3, 'sandbox_ipn_attempts_total', labels) - value(s2, 'sandbox_ipn_attempts_total', labels);
      assert.equal(refused.length, 3, 'three POSTs reached the refusing merchant');
      assert.equal(d3({ result: 'retry' }), 2);
      assert.equal(d3({ result: 'failed' }), 1);
      assert.equal(d3({ result: 'delivered' }), 0);
      assert.equal(
        value(s3, 'sandbox_ipn_deliveries', { status: 'failed' }) -
          value(s2, 'sandbox_ipn_deliveries', { status: 'failed' }),
        1,
      );
      // No IPN reached the API: the workflow's status poll resolves the purchase.
      await until('the refused purchase is resolved by a status poll', async () => {
        const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
        return got.body.pending.length === 0;
      });
      const worker1 = await scrape(workerMetricsUrl);
      assert.equal(resolved(worker1, 'poll') - resolved(worker0, 'poll'), 1, 'one purchase resolved by poll');
      const api2 = await scrape(`${stack.apiUrl}/metrics`);
      assert.equal(resolved(api2, 'ipn') - resolved(api0, 'ipn'), 1, 'and none more by IPN');
    } finally {
      await setIpnUrl(`${stack.publicUrl}/fps/ipn`);
      await new Promise<void>((resolve) => refuser.close(() => resolve()));
    }
  });
});
