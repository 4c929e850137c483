// Webhooks end to end: the real stack (sandbox, worker, API as processes) and real HTTP receivers
// in this process. Register an endpoint, buy, and the receiver gets purchase.approved with a
// signature that verifies (and a tampered body or an old timestamp does not); a receiver answering
// 500 twice gets the same event three times and nothing else; a receiver that was down gets every
// event the log has; the API killed -9 mid-delivery still delivers; bad input is a problem.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApi } from '../../api/app';
import { config, type Config } from '../../config';
import { openLedgerDb } from '../../store/db';
import { LedgerStore } from '../../store/ledger';
import { sign, verify, WebhookSignatureError } from '../../webhooks/signature';
import { freePort } from '../support/processes';
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from '../support/webhook-receiver';
import { activeInstrument, call, getStack, until, type Answer, type Stack } from './stack';

interface Endpoint {
  id: string;
  secret: string;
  url: string;
  events: string[];
}

describe('api: webhooks', function () {
  this.timeout(120_000);
  let stack: Stack;
  const receivers: WebhookReceiver[] = [];
  const endpoints: string[] = [];
  /** Every delivery received in this file whose first attempt succeeded: event creation → receiver, ms. */
  const latencies: number[] = [];

  before(async () => {
    stack = await getStack();
  });
  after(async () => {
    for (const id of endpoints) await call(stack, 'DELETE', `/webhook-endpoints/${id}`);
    await Promise.all(receivers.map((r) => r.stop()));
    if (latencies.length > 0) {
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
      console.log(
        `      webhook latency, event created → receiver (WEBHOOK_POLL_MS=50): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, n=${sorted.length}`,
      );
    }
  });

  async function receiver(options: { listen?: boolean } = {}): Promise<WebhookReceiver> {
    const r = await startWebhookReceiver(options);
    receivers.push(r);
    return r;
  }

  async function register(url: string, events: string[], description?: string): Promise<Endpoint> {
    const created = await call<Endpoint>(stack, 'POST', '/webhook-endpoints', { body: { url, events, description } });
    assert.equal(created.status, 201, created.text);
    endpoints.push(created.body.id);
    return created.body;
  }

  const purchase = (instrumentId: string, amount: string, key: string) =>
    call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount, currency: 'USD' },
      headers: { 'idempotency-key': key },
    });

  function expectProblem(answer: Answer, status: number, code: string, field?: string): void {
    assert.equal(answer.status, status, answer.text);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(answer.body.code, code, answer.text);
    if (field !== undefined) assert.equal(answer.body.field, field, answer.text);
  }

  /** The instrument's events as the event log lists them, paging 3 at a time. */
  async function logOf(instrumentId: string): Promise<Array<{ id: string; type: string; sequence: number }>> {
    const events: Array<{ id: string; type: string; sequence: number }> = [];
    let after: string | undefined;
    for (;;) {
      const page = await call(
        stack,
        'GET',
        `/events?instrumentId=${instrumentId}&limit=3${after ? `&after=${after}` : ''}`,
      );
      assert.equal(page.status, 200, page.text);
      events.push(...page.body.data);
      after = page.body.nextCursor;
      if (!page.body.hasMore) return events;
    }
  }

  describe('endpoints', () => {
    it('POST answers 201 with an id and a whsec_ secret once; GET never shows the secret', async () => {
      const created = await call(stack, 'POST', '/webhook-endpoints', {
        body: { url: 'http://127.0.0.1:9/hooks', events: ['purchase.approved', 'refund.succeeded'], description: 'a' },
      });
      assert.equal(created.status, 201, created.text);
      endpoints.push(created.body.id);
      assert.match(created.body.id, /^we_[0-9a-f]{20}$/);
      assert.match(created.body.secret, /^whsec_[A-Za-z0-9_-]{32}$/);
      assert.equal(created.body.status, 'enabled');
      assert.deepEqual(created.body.events, ['purchase.approved', 'refund.succeeded']);
      const one = await call(stack, 'GET', `/webhook-endpoints/${created.body.id}`);
      assert.equal(one.status, 200);
      assert.equal(one.body.secret, undefined);
      assert.ok(!one.text.includes(created.body.secret));
      assert.deepEqual(one.body.deliveries, { pending: 0, delivered: 0, failed: 0 });
      const list = await call(stack, 'GET', '/webhook-endpoints');
      assert.ok(list.body.data.some((e: Endpoint) => e.id === created.body.id));
      assert.ok(!list.text.includes('whsec_'));
    });

    it('a retried create with the same Idempotency-Key answers the same endpoint; another body is 409', async () => {
      const body = { url: 'http://127.0.0.1:9/retry', events: ['*'] };
      const headers = { 'idempotency-key': `endpoint-${Date.now()}` };
      const first = await call(stack, 'POST', '/webhook-endpoints', { body, headers });
      const again = await call(stack, 'POST', '/webhook-endpoints', { body, headers });
      endpoints.push(first.body.id);
      assert.equal(again.status, 201);
      assert.equal(again.body.id, first.body.id);
      assert.equal(again.body.secret, first.body.secret);
      const other = await call(stack, 'POST', '/webhook-endpoints', {
        body: { ...body, events: ['purchase.approved'] },
        headers,
      });
      expectProblem(other, 409, 'idempotency_key_reused');
    });

    it('bad input is a 4xx problem naming the field', async () => {
      const post = (body: unknown) => call(stack, 'POST', '/webhook-endpoints', { body });
      expectProblem(await post({ events: ['*'] }), 422, 'validation_failed', 'url');
      expectProblem(await post({ url: 'http://127.0.0.1:9/x' }), 422, 'validation_failed', 'events');
      expectProblem(await post({ url: 'http://127.0.0.1:9/x', events: [] }), 422, 'validation_failed', 'events');
      expectProblem(
        await post({ url: 'http://127.0.0.1:9/x', events: ['purchase.aproved'] }),
        422,
        'validation_failed',
        'events.0',
      );
      expectProblem(
        await post({ url: 'http://127.0.0.1:9/x', events: ['*', 'purchase.approved'] }),
        422,
        'validation_failed',
        'events',
      );
      expectProblem(
        await post({ url: 'http://127.0.0.1:9/x', events: ['purchase.approved', 'purchase.approved'] }),
        422,
        'validation_failed',
        'events',
      );
      expectProblem(
        await post({ url: 'http://127.0.0.1:9/x', events: ['*'], secret: 'x' }),
        422,
        'validation_failed',
        'secret',
      );
      expectProblem(await post({ url: 'ftp://example.com/x', events: ['*'] }), 422, 'url_not_allowed', 'url');
      expectProblem(await post({ url: 'not a url', events: ['*'] }), 422, 'url_not_allowed', 'url');
      expectProblem(await post({ url: 'https://u:p@example.com/x', events: ['*'] }), 422, 'url_not_allowed', 'url');
      expectProblem(await post({ url: 42, events: ['*'] }), 422, 'validation_failed', 'url');
      expectProblem(
        await call(stack, 'POST', '/webhook-endpoints', {
          raw: '{"url":',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'malformed_json',
      );
      expectProblem(await call(stack, 'GET', '/webhook-endpoints/we_nope'), 404, 'webhook_endpoint_not_found');
      expectProblem(await call(stack, 'DELETE', '/webhook-endpoints/we_nope'), 404, 'webhook_endpoint_not_found');
      expectProblem(await call(stack, 'POST', '/webhook-endpoints/we_nope/test'), 404, 'webhook_endpoint_not_found');
      expectProblem(await call(stack, 'GET', '/events/evt_nope'), 404, 'event_not_found');
      expectProblem(await call(stack, 'GET', '/events?limit=0'), 400, 'invalid_parameter', 'limit');
      expectProblem(await call(stack, 'GET', '/events?after=garbage'), 400, 'invalid_parameter', 'after');
      expectProblem(await call(stack, 'GET', '/events?type=nope'), 400, 'invalid_parameter', 'type');
      expectProblem(await call(stack, 'GET', '/events?colour=red'), 400, 'invalid_parameter', 'colour');
      expectProblem(await call(stack, 'GET', '/webhook-endpoints', { key: null }), 401, 'missing_api_key');
      expectProblem(await call(stack, 'GET', '/events', { key: null }), 401, 'missing_api_key');
    });

    it('with WEBHOOK_ALLOW_PRIVATE_URLS off, loopback and private addresses are refused', async () => {
      const base = config();
      const cfg: Config = { ...base, webhooks: { ...base.webhooks, allowPrivateUrls: false } };
      const dir = mkdtempSync(path.join(os.tmpdir(), 'webhooks-private-'));
      const ledger = new LedgerStore(await openLedgerDb(`sqlite:${path.join(dir, 'ledger.sqlite')}`));
      const { app } = createApi({ client: stack.client, config: cfg, logger: pino({ level: 'silent' }), ledger });
      const port = await freePort();
      const server: Server = await new Promise((resolve) => {
        const s = app.listen(port, '127.0.0.1', () => resolve(s));
      });
      try {
        const api = { apiUrl: `http://127.0.0.1:${port}`, apiKey: stack.apiKey };
        for (const url of [
          'http://127.0.0.1:3000/hook',
          'http://localhost/hook',
          'http://api.localhost:3000/hook',
          'http://[::1]/hook',
          'http://10.1.2.3/hook',
          'http://169.254.169.254/latest/meta-data/',
          'http://2130706433/hook',
        ]) {
          const refused = await call(api, 'POST', '/webhook-endpoints', { body: { url, events: ['*'] } });
          expectProblem(refused, 422, 'url_not_allowed', 'url');
          assert.equal(refused.body.reason, 'private_address', url);
        }
        const publicOne = await call(api, 'POST', '/webhook-endpoints', {
          body: { url: 'https://93.184.216.34/hook', events: ['*'] },
        });
        assert.equal(publicOne.status, 201, publicOne.text);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await ledger.close();
      }
    });
  });

  describe('delivery', () => {
    let instrumentId: string;
    let happy: WebhookReceiver;
    let happyEndpoint: Endpoint;

    before(async () => {
      happy = await receiver();
      happyEndpoint = await register(happy.url, ['purchase.approved'], 'happy path');
      ({ instrumentId } = await activeInstrument(stack, 'webhooks-buyer', {
        type: 'prepaid',
        fundingAmount: '100.00',
        currency: 'USD',
      }));
    });

    it('a purchase reaches the receiver as purchase.approved, signed; a tampered body or an old timestamp is refused', async () => {
      const bought = await purchase(instrumentId, '4.99', 'webhook-first');
      assert.equal(bought.status, 201, bought.text);
      const got = await until('purchase.approved at the receiver', async () =>
        happy.received.find((r) => r.event?.instrumentId === instrumentId && r.event.type === 'purchase.approved'),
      );
      latencies.push(got.receivedAt - Date.parse(got.event!.createdAt));
      const event = JSON.parse(got.rawBody);
      assert.deepEqual(Object.keys(event).sort(), [
        'createdAt',
        'customerId',
        'data',
        'id',
        'instrumentId',
        'sequence',
        'type',
      ]);
      assert.equal(event.customerId, 'webhooks-buyer');
      assert.equal(event.data.id, 'webhook-first');
      assert.equal(event.data.amount.amount, '4.99');
      assert.equal(event.data.status, 'Success');
      assert.equal(got.headers['fps-event-id'], event.id);
      assert.match(got.headers['content-type'] ?? '', /^application\/json/);
      const header = got.headers['fps-signature'] as string;
      assert.match(header, /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.deepEqual(verify(got.rawBody, header, happyEndpoint.secret), {
        timestamp: Number(/t=(\d+)/.exec(header)![1]),
      });
      assert.throws(
        () => verify(got.rawBody.replace('4.99', '0.01'), header, happyEndpoint.secret),
        (e: unknown) => e instanceof WebhookSignatureError && e.code === 'mismatch',
      );
      const old = Math.floor(Date.now() / 1000) - 3600;
      assert.throws(
        () => verify(got.rawBody, sign(got.rawBody, happyEndpoint.secret, old), happyEndpoint.secret, 300),
        (e: unknown) => e instanceof WebhookSignatureError && e.code === 'timestamp_outside_tolerance',
      );
      // The event log has it, with its delivery.
      const logged = await call(stack, 'GET', `/events/${event.id}`);
      assert.equal(logged.status, 200, logged.text);
      const { deliveries, ...body } = logged.body;
      assert.deepEqual(body, event);
      const mine = deliveries.find((d: { endpointId: string }) => d.endpointId === happyEndpoint.id);
      assert.equal(mine.status, 'delivered');
      assert.deepEqual(
        mine.attemptLog.map((a: { statusCode: number }) => a.statusCode),
        [200],
      );
    });

    it('a receiver answering 500 twice then 200 gets the same event id three times and nothing else', async () => {
      const flaky = await receiver();
      flaky.respond = (_req, n) => (n <= 2 ? 500 : 200);
      const endpoint = await register(flaky.url, ['purchase.approved'], 'flaky');
      const bought = await purchase(instrumentId, '1.00', 'webhook-flaky');
      assert.equal(bought.status, 201, bought.text);
      await until('third attempt', async () => flaky.received.length >= 3);
      await new Promise((r) => setTimeout(r, 1_500)); // a fourth request would arrive within the 1 s cap
      const ids = flaky.received.map((r) => r.event?.id);
      assert.equal(flaky.received.length, 3, `received ${JSON.stringify(flaky.received.map((r) => r.event?.type))}`);
      assert.equal(new Set(ids).size, 1);
      assert.deepEqual(
        flaky.received.map((r) => r.status),
        [500, 500, 200],
      );
      for (const r of flaky.received) verify(r.rawBody, r.headers['fps-signature'] as string, endpoint.secret);
      assert.equal(flaky.received[0].event!.instrumentId, instrumentId);
      const logged = await call(stack, 'GET', `/events/${ids[0]}`);
      const delivery = logged.body.deliveries.find((d: { endpointId: string }) => d.endpointId === endpoint.id);
      assert.equal(delivery.status, 'delivered');
      assert.equal(delivery.attempts, 3);
      assert.deepEqual(
        delivery.attemptLog.map((a: { statusCode: number; error: string | null }) => [a.statusCode, a.error]),
        [
          [500, 'HTTP 500'],
          [500, 'HTTP 500'],
          [200, null],
        ],
      );
      await call(stack, 'DELETE', `/webhook-endpoints/${endpoint.id}`);
    });

    it('a receiver that was down gets every event of the instrument once it is up (same as GET /events, sequences 1..n)', async () => {
      const down = await receiver({ listen: false });
      const endpoint = await register(down.url, ['*'], 'down for a while');
      const { instrumentId: fresh } = await activeInstrument(stack, 'webhooks-down', {
        type: 'prepaid',
        fundingAmount: '30.00',
        currency: 'USD',
      });
      for (const [amount, key] of [
        ['2.00', 'down-1'],
        ['0.51', 'down-declined'],
        ['1.13', 'down-pending'],
        ['3.00', 'down-2'],
      ])
        await purchase(fresh, amount, key);
      // The pending one settles by IPN; its purchase.approved is an event too.
      await until('the pending purchase settled in the log', async () =>
        (await logOf(fresh)).some((e) => e.type === 'purchase.approved' && e.sequence > 3),
      );
      await new Promise((r) => setTimeout(r, 1_000)); // several refused attempts each
      const beforeUp = await call(stack, 'GET', `/webhook-endpoints/${endpoint.id}`);
      assert.ok(beforeUp.body.deliveries.pending > 0, JSON.stringify(beforeUp.body.deliveries));
      await down.start();
      const log = await logOf(fresh);
      const types = log.map((e) => e.type);
      for (const t of ['funding.succeeded', 'purchase.approved', 'purchase.declined', 'purchase.pending'])
        assert.ok(types.includes(t), `the log has ${t}: ${types.join(', ')}`);
      const mine = () => down.received.filter((r) => r.event?.instrumentId === fresh);
      await until('every event delivered', async () => mine().length >= log.length, 20_000);
      await new Promise((r) => setTimeout(r, 500));
      const received = mine();
      assert.deepEqual(
        received.map((r) => r.event!.id).sort(),
        log.map((e) => e.id).sort(),
        'the same events, once each',
      );
      assert.deepEqual(
        received.map((r) => r.event!.sequence).sort((a, b) => a - b),
        log.map((_, i) => i + 1),
        'sequences 1..n once sorted',
      );
      for (const r of received) verify(r.rawBody, r.headers['fps-signature'] as string, endpoint.secret);
      const after = await call(stack, 'GET', `/webhook-endpoints/${endpoint.id}`);
      assert.equal(after.body.status, 'enabled');
      assert.ok(after.body.lastSuccessAt);
      await call(stack, 'DELETE', `/webhook-endpoints/${endpoint.id}`);
    });

    it('the API killed -9 while a delivery is in flight: the restarted API delivers it (at least once)', async function () {
      this.timeout(90_000);
      const slow = await receiver();
      let first = true;
      let arrived!: (r: ReceivedWebhook) => void;
      const inFlight = new Promise<ReceivedWebhook>((resolve) => (arrived = resolve));
      slow.respond = async (req) => {
        if (!first) return 200;
        first = false;
        arrived(req);
        await new Promise((r) => setTimeout(r, 3_000)); // the API dies before this answer
        return 200;
      };
      const endpoint = await register(slow.url, ['purchase.approved'], 'crash');
      const bought = await purchase(instrumentId, '1.50', 'webhook-crash');
      assert.equal(bought.status, 201, bought.text);
      const attempt = await inFlight;
      await stack.api.kill9();
      await stack.api.restart();
      // The claim's lease (2 × WEBHOOK_TIMEOUT_MS + 10 s) runs out, then the new process sends it again.
      const again = await until(
        'redelivered',
        async () => slow.received.find((r) => r !== attempt && r.event?.id === attempt.event!.id && r.status === 200),
        60_000,
      );
      verify(again.rawBody, again.headers['fps-signature'] as string, endpoint.secret);
      const logged = await call(stack, 'GET', `/events/${attempt.event!.id}`);
      const delivery = logged.body.deliveries.find((d: { endpointId: string }) => d.endpointId === endpoint.id);
      assert.equal(delivery.status, 'delivered');
      await call(stack, 'DELETE', `/webhook-endpoints/${endpoint.id}`);
    });

    it('POST /webhook-endpoints/{id}/test sends webhook.test to that endpoint only; the log lists it only when asked', async () => {
      const other = await receiver();
      await register(other.url, ['*'], 'must not get the test');
      const key = `test-${Date.now()}`;
      const queued = await call(stack, 'POST', `/webhook-endpoints/${happyEndpoint.id}/test`, {
        headers: { 'idempotency-key': key },
      });
      assert.equal(queued.status, 202, queued.text);
      assert.equal(queued.body.type, 'webhook.test');
      assert.equal(queued.body.instrumentId, null);
      const again = await call(stack, 'POST', `/webhook-endpoints/${happyEndpoint.id}/test`, {
        headers: { 'idempotency-key': key },
      });
      assert.equal(again.body.id, queued.body.id, 'the same key answers the same test event');
      const got = await until('test event received', async () => happy.byEvent(queued.body.id)[0]);
      latencies.push(got.receivedAt - Date.parse(got.event!.createdAt));
      verify(got.rawBody, got.headers['fps-signature'] as string, happyEndpoint.secret);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(happy.byEvent(queued.body.id).length, 1);
      assert.equal(other.byEvent(queued.body.id).length, 0);
      const listed = await call(stack, 'GET', '/events?limit=500');
      assert.ok(!listed.body.data.some((e: { id: string }) => e.id === queued.body.id));
      const tests = await call(stack, 'GET', '/events?type=webhook.test&limit=500');
      assert.ok(tests.body.data.some((e: { id: string }) => e.id === queued.body.id));
      const one = await call(stack, 'GET', `/events/${queued.body.id}`);
      assert.equal(one.body.deliveries.length, 1);
      assert.equal(one.body.deliveries[0].status, 'delivered');
    });

    it('a deleted endpoint receives nothing more and is gone', async () => {
      const gone = await receiver();
      const endpoint = await register(gone.url, ['purchase.approved'], 'deleted');
      const deleted = await call(stack, 'DELETE', `/webhook-endpoints/${endpoint.id}`);
      assert.equal(deleted.status, 204);
      expectProblem(await call(stack, 'GET', `/webhook-endpoints/${endpoint.id}`), 404, 'webhook_endpoint_not_found');
      await purchase(instrumentId, '0.25', 'after-delete');
      await until('the happy receiver got it', async () =>
        happy.received.some((r) => r.event?.data.id === 'after-delete'),
      );
      assert.equal(gone.received.length, 0);
    });

    it('delivery latency over 30 purchases (reported, not asserted beyond a sanity bound)', async () => {
      const start = happy.received.length;
      for (let i = 0; i < 30; i++) assert.equal((await purchase(instrumentId, '0.10', `latency-${i}`)).status, 201);
      await until('30 delivered', async () => happy.received.length >= start + 30);
      const batch = happy.received.slice(start).map((r) => r.receivedAt - Date.parse(r.event!.createdAt));
      latencies.push(...batch);
      assert.ok(Math.max(...batch) < 5_000, `latencies ${batch.join(', ')}`);
    });
  });
});
