// The merchant client (client/) against the real stack (sandbox, worker and API as processes):
// every method once, typed errors with the problem's code, retries with the same Idempotency-Key
// through a real HTTP proxy that loses answers, and constructEvent on a really delivered webhook.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  constructEvent,
  FpsApiError,
  FpsClient,
  FpsConnectionError,
  PaymentDeclinedError,
  sign,
  WebhookSignatureError,
  type CreateInstrumentRequest,
  type Money,
} from '../../client';
import { freePort } from '../support/processes';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver';
import { cbuiDecision, getStack, until, type Stack } from '../api/stack';

const usd = (amount: string) => ({ amount, currency: 'USD' });
const minor = (m: Money | undefined) => m?.minorUnits;

function refusedWith(code: string) {
  return (err: unknown) => (err instanceof FpsApiError || err instanceof WebhookSignatureError) && err.code === code;
}

describe('client: the typed merchant client', function () {
  this.timeout(120_000);
  let stack: Stack;
  let fps: FpsClient;
  const run = Date.now().toString(36);

  before(async () => {
    stack = await getStack();
    fps = new FpsClient({ baseUrl: stack.apiUrl, apiKey: stack.apiKey });
  });

  /** Creates an instrument with the client, approves it at the sandbox CBUI, waits until it takes purchases. */
  async function activeInstrument(customerId: string, request: CreateInstrumentRequest): Promise<string> {
    const key = `create-${customerId}`;
    const created = await fps.createInstrument(customerId, request, { idempotencyKey: key });
    assert.match(created.instrumentId, /^ins_/);
    assert.equal(created.state, 'awaitingAuthorization');
    // authorizationUrl with the same key: the same instrument's URL (the seed's link_url).
    assert.equal(await fps.authorizationUrl(customerId, request, { idempotencyKey: key }), created.authorizationUrl);
    const returned = await fetch(await cbuiDecision(created.authorizationUrl, 'approve'), { redirect: 'manual' });
    assert.equal(returned.status, 303);
    await until(`instrument ${created.instrumentId} ready`, async () => {
      const got = await fps.instrument(created.instrumentId);
      return ['active', 'authorized'].includes(got.state) && got.pending.length === 0;
    });
    return created.instrumentId;
  }

  it('prepaid: purchase (approved, pending, declined), credit, fund, instrument, transactions, statement', async () => {
    const customerId = `cli-pre-${run}`;
    const id = await activeInstrument(customerId, { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' });

    const approved = await fps.purchase(id, { ...usd('4.99'), description: 'E-book' }, { idempotencyKey: 'book-1' });
    assert.equal(approved.outcome, 'approved');
    assert.equal(approved.id, 'book-1');
    assert.deepEqual(approved.amount, { amount: '4.99', minorUnits: 499, currency: 'USD' });

    const pending = await fps.purchase(id, usd('1.13'), { idempotencyKey: 'pending-1' });
    assert.equal(pending.outcome, 'pending');
    assert.equal(pending.statusUrl, `/instruments/${id}/purchases/pending-1`);

    await assert.rejects(
      fps.purchase(id, usd('0.51'), { idempotencyKey: 'denied-1' }),
      (err: unknown) =>
        err instanceof PaymentDeclinedError &&
        err.code === 'payment_declined' &&
        err.status === 402 &&
        err.declineCode === 'TransactionDenied' &&
        err.operation?.id === 'denied-1',
    );
    await assert.rejects(
      fps.purchase(id, usd('4.999')),
      (err: unknown) => err instanceof FpsApiError && err.code === 'invalid_amount' && err.field === 'amount',
    );
    await assert.rejects(fps.instrument('ins_doesnotexist0000000'), refusedWith('instrument_not_found'));

    const refund = await fps.credit(id, { purchaseId: 'book-1', ...usd('1.00') }, { idempotencyKey: 'refund-1' });
    assert.equal(refund.operation, 'refund');
    assert.equal(refund.outcome, 'approved');
    await until('pending purchase settled by its IPN', async () => (await fps.instrument(id)).pending.length === 0);
    // After the IPN: while pending-1 is open, its 1.13 may yet come back, and 5.00 more could raise
    // the balance above the 20.00 limit (PrepaidFundingLimitExceeded).
    const funded = await fps.fund(id, usd('5.00'), { idempotencyKey: 'topup-1' });
    assert.equal(funded.operation, 'fund');
    const settled = await fps.instrument(id);
    // 20.00 − 4.99 − 1.13 + 1.00 + 5.00
    assert.equal(minor(settled.balance), 1988);
    const record = await fps.getPurchase(id, 'book-1');
    assert.equal(record.refundedAmount.minorUnits, 100);

    // Pages of 2, fetched as the loop goes: the same rows, in the same order, as one big page.
    const paged: string[] = [];
    for await (const op of fps.transactions(id, { limit: 2 })) paged.push(`${op.operation}:${op.id}:${op.status}`);
    let pages = 0;
    const oneBig: string[] = [];
    for await (const page of fps.transactions(id, { limit: 500 }).pages()) {
      pages++;
      oneBig.push(...page.data.map((op) => `${op.operation}:${op.id}:${op.status}`));
    }
    assert.equal(pages, 1);
    assert.deepEqual(paged, oneBig);
    for (const expected of ['purchase:book-1:Success', 'purchase:pending-1:Success', 'refund:refund-1:Success'])
      assert.ok(paged.includes(expected), `${expected} in ${paged.join(', ')}`);
    assert.ok(paged.length >= 6, paged.join(', '));
    const purchases = [];
    for await (const op of fps.transactions(id, { operation: 'purchase', status: 'Success' })) purchases.push(op.id);
    assert.deepEqual(purchases.sort(), ['book-1', 'pending-1']);

    const statement = await fps.statement(id);
    assert.equal(statement.type, 'prepaid');
    assert.deepEqual(statement.closingBalance, usd('19.88'));
    const csv = await fps.statementCsv(id);
    assert.match(csv.split('\n')[0], /^instrument_id,instrument_type,date,operation/);
    await assert.rejects(fps.statement(id, { from: 'yesterday' }), refusedWith('invalid_parameter'));
  });

  it('prepaid: updateInstrument (PATCH) sets and removes balance rules; bad rules are a typed error that changes nothing', async () => {
    const id = await activeInstrument(`cli-rules-${run}`, { type: 'prepaid', fundingAmount: '20.00', currency: 'USD' });
    const set = await fps.updateInstrument(id, {
      lowBalanceThreshold: '5.00',
      autoTopUp: { below: '2.00', amount: '10.00' },
    });
    assert.deepEqual(
      {
        low: minor(set.balanceRules?.lowBalanceThreshold),
        below: minor(set.balanceRules?.autoTopUp?.below),
        amount: minor(set.balanceRules?.autoTopUp?.amount),
      },
      { low: 500, below: 200, amount: 1000 },
    );
    await assert.rejects(
      fps.updateInstrument(id, { lowBalanceThreshold: '-1.00' }),
      (err: unknown) => err instanceof FpsApiError && err.status === 422,
    );
    const unchanged = await fps.instrument(id);
    assert.equal(minor(unchanged.balanceRules?.lowBalanceThreshold), 500, 'the refused change changed nothing');
    const removed = await fps.updateInstrument(id, { autoTopUp: null });
    assert.equal(removed.balanceRules?.autoTopUp, undefined);
    assert.equal(minor(removed.balanceRules?.lowBalanceThreshold), 500, 'a field left out keeps its rule');
  });

  it('postpaid: purchase, settle, purchase, writeOff', async () => {
    const id = await activeInstrument(`cli-post-${run}`, {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    await fps.purchase(id, usd('2.49'));
    assert.equal(minor((await fps.instrument(id)).debt), 249);
    await assert.rejects(fps.purchase(id, usd('60.00')), refusedWith('limit_exceeded'));
    const settle = await fps.settle(id, {}, { idempotencyKey: 'settle-1' });
    assert.equal(settle.operation, 'settle');
    await until('debt settled', async () => {
      const got = await fps.instrument(id);
      return got.pending.length === 0 && minor(got.debt) === 0;
    });
    await fps.purchase(id, usd('3.00'));
    const writeOff = await fps.writeOff(id);
    assert.equal(writeOff.operation, 'writeOff');
    const closed = await until('written off and closed', async () => {
      const got = await fps.instrument(id);
      return got.state === 'closed' && got;
    });
    assert.equal(minor(closed.debt), 0);
  });

  it('single use: authorize (reserve) then capture; authorize then void', async () => {
    const reserve = { type: 'single-use', amount: '9.99', currency: 'USD', singleUseMode: 'reserve' } as const;
    const first = await activeInstrument(`cli-su1-${run}`, reserve);
    const reserved = await fps.authorize(first, usd('9.99'));
    assert.equal(reserved.transactionStatus, 'Reserved');
    const captured = await fps.capture(first);
    assert.equal(captured.operation, 'capture');
    assert.equal(captured.outcome, 'approved');
    await assert.rejects(fps.void(first), refusedWith('invalid_state'));

    const second = await activeInstrument(`cli-su2-${run}`, reserve);
    assert.equal((await fps.authorize(second, usd('9.99'))).transactionStatus, 'Reserved');
    const voided = await fps.void(second);
    assert.equal(voided.operation, 'void');
    assert.equal(voided.outcome, 'approved');
  });

  describe('webhooks', () => {
    let receiver: WebhookReceiver;
    before(async () => {
      receiver = await startWebhookReceiver();
    });
    after(async () => {
      await receiver.stop();
    });

    it('webhookEndpoints.create/list/get/test/delete, events(), constructEvent on a delivered webhook', async () => {
      const endpoint = await fps.webhookEndpoints.create({
        url: receiver.url,
        events: ['purchase.approved'],
        description: 'client test',
      });
      assert.match(endpoint.secret, /^whsec_/);
      assert.ok((await fps.webhookEndpoints.list()).some((e) => e.id === endpoint.id));
      assert.equal((await fps.webhookEndpoints.get(endpoint.id)).url, receiver.url);

      const id = await activeInstrument(`cli-hook-${run}`, {
        type: 'prepaid',
        fundingAmount: '10.00',
        currency: 'USD',
      });
      await fps.purchase(id, usd('2.49'), { idempotencyKey: 'skin-1' });
      const test = await fps.webhookEndpoints.test(endpoint.id);
      assert.equal(test.type, 'webhook.test');

      const delivered = await until('purchase.approved delivered', async () =>
        receiver.received.find((r) => r.event?.instrumentId === id && r.event.type === 'purchase.approved'),
      );
      const event = constructEvent(delivered.rawBody, delivered.headers['fps-signature'], endpoint.secret);
      assert.equal(event.type, 'purchase.approved');
      assert.equal(event.instrumentId, id);
      assert.equal((event.data as { id?: string }).id, 'skin-1');
      assert.equal(event.id, delivered.headers['fps-event-id']);
      // The same bytes as a Buffer verify too; a changed byte, another secret, an old signature do not.
      assert.equal(
        constructEvent(Buffer.from(delivered.rawBody), delivered.headers['fps-signature'], endpoint.secret).id,
        event.id,
      );
      assert.throws(
        () =>
          constructEvent(
            delivered.rawBody.replace('2.49', '0.01'),
            delivered.headers['fps-signature'],
            endpoint.secret,
          ),
        refusedWith('mismatch'),
      );
      assert.throws(
        () => constructEvent(delivered.rawBody, delivered.headers['fps-signature'], 'whsec_other'),
        refusedWith('mismatch'),
      );
      const tenMinutesAgo = sign(delivered.rawBody, endpoint.secret, Math.floor(Date.now() / 1000) - 600);
      assert.throws(
        () => constructEvent(delivered.rawBody, tenMinutesAgo, endpoint.secret),
        refusedWith('timestamp_outside_tolerance'),
      );
      assert.equal(constructEvent(delivered.rawBody, tenMinutesAgo, endpoint.secret, 900).id, event.id);
      assert.throws(
        () => constructEvent(delivered.rawBody, undefined, endpoint.secret),
        refusedWith('malformed_header'),
      );

      const testDelivery = await until('webhook.test delivered', async () => receiver.byEvent(test.id)[0]);
      assert.equal(
        constructEvent(testDelivery.rawBody, testDelivery.headers['fps-signature'], endpoint.secret).type,
        'webhook.test',
      );

      // The event log, oldest first, page by page (limit 1), and the cursor resumes after the last.
      const stream = fps.events({ instrumentId: id, limit: 1 });
      const types: string[] = [];
      for await (const e of stream) types.push(`${e.sequence}:${e.type}`);
      assert.ok(types.includes(`${event.sequence}:purchase.approved`), types.join(', '));
      assert.deepEqual(
        types.map((x) => Number(x.split(':')[0])),
        types.map((_, i) => i + 1),
      );
      assert.ok(stream.cursor);
      const later = [];
      for await (const e of fps.events({ instrumentId: id, after: stream.cursor })) later.push(e);
      assert.deepEqual(later, []);
      const withDeliveries = await fps.event(event.id);
      assert.equal(withDeliveries.deliveries.find((d) => d.endpointId === endpoint.id)?.status, 'delivered');

      await fps.webhookEndpoints.delete(endpoint.id);
      await assert.rejects(fps.webhookEndpoints.get(endpoint.id), refusedWith('webhook_endpoint_not_found'));
      await assert.rejects(
        fps.webhookEndpoints.create({ url: 'ftp://example.com/x', events: ['*'] }),
        refusedWith('url_not_allowed'),
      );
    });
  });

  describe('retries', () => {
    /** A real HTTP proxy in front of the API; `decide` picks what the n-th request gets. */
    interface Seen {
      method: string;
      path: string;
      key: string | undefined;
    }
    let proxy: Server;
    let proxyUrl: string;
    let seen: Seen[];
    let decide: (n: number, req: IncomingMessage) => 'forward' | 'forward-then-503' | 'reset' | '503';

    before(async () => {
      proxy = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({ method: req.method!, path: req.url!, key: req.headers['idempotency-key'] as string | undefined });
          const action = decide(seen.length, req);
          if (action === 'reset') return void req.socket.destroy();
          const unavailable = () =>
            res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' }).end(
              JSON.stringify({
                type: '/problems/temporal_unavailable',
                title: 'Unavailable',
                status: 503,
                code: 'temporal_unavailable',
              }),
            );
          if (action === '503') return unavailable();
          const target = new URL(req.url!, stack.apiUrl);
          const upstream = httpRequest(target, { method: req.method, headers: req.headers }, (answer) => {
            const body: Buffer[] = [];
            answer.on('data', (c: Buffer) => body.push(c));
            answer.on('end', () => {
              // The API did the work; the caller never hears of it.
              if (action === 'forward-then-503') return unavailable();
              res.writeHead(answer.statusCode!, answer.headers).end(Buffer.concat(body));
            });
          });
          upstream.end(Buffer.concat(chunks));
        });
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    after(async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    });
    beforeEach(() => {
      seen = [];
      decide = () => 'forward';
    });

    it('a purchase whose answer was lost (503) and one whose connection reset are sent again with the same key; money moves once', async () => {
      const id = await activeInstrument(`cli-retry-${run}`, {
        type: 'prepaid',
        fundingAmount: '20.00',
        currency: 'USD',
      });
      const retries: Array<{ attempt: number; idempotencyKey?: string }> = [];
      const viaProxy = new FpsClient({
        baseUrl: proxyUrl,
        apiKey: stack.apiKey,
        retry: { initialDelayMs: 20 },
        onRetry: (info) => retries.push(info),
      });

      decide = (n) => (n === 1 ? 'forward-then-503' : 'forward');
      const first = await viaProxy.purchase(id, usd('1.00'), { idempotencyKey: 'lost-answer' });
      assert.equal(first.outcome, 'approved');
      assert.deepEqual(
        seen.map((s) => s.key),
        ['lost-answer', 'lost-answer'],
      );

      // No key given: the client makes one and sends that same one again.
      seen = [];
      decide = (n) => (n === 1 ? 'reset' : 'forward');
      const second = await viaProxy.purchase(id, usd('2.00'));
      assert.equal(second.outcome, 'approved');
      assert.equal(seen.length, 2);
      assert.ok(seen[0].key && seen[0].key === seen[1].key, JSON.stringify(seen));
      assert.equal(second.id, seen[0].key);
      assert.deepEqual(
        retries.map((r) => r.attempt),
        [1, 1],
      );

      // Reads retry too.
      seen = [];
      decide = (n) => (n === 1 ? '503' : 'forward');
      const after = await viaProxy.instrument(id);
      assert.equal(seen.length, 2);
      assert.equal(minor(after.balance), 2000 - 100 - 200);
      const purchases = [];
      for await (const op of fps.transactions(id, { operation: 'purchase' })) purchases.push(op.id);
      assert.deepEqual(purchases.sort(), [second.id, 'lost-answer'].sort());
    });

    it('gives up after its bounded retries: the last problem as FpsApiError, or FpsConnectionError', async () => {
      decide = () => '503';
      const viaProxy = new FpsClient({
        baseUrl: proxyUrl,
        apiKey: stack.apiKey,
        retry: { retries: 2, initialDelayMs: 10 },
      });
      await assert.rejects(
        viaProxy.purchase('ins_x', usd('1.00'), { idempotencyKey: 'never' }),
        refusedWith('temporal_unavailable'),
      );
      assert.equal(seen.length, 3);
      assert.ok(seen.every((s) => s.key === 'never'));

      // 4xx answers are final: one request.
      seen = [];
      decide = () => 'forward';
      await assert.rejects(viaProxy.instrument('ins_doesnotexist0000000'), refusedWith('instrument_not_found'));
      assert.equal(seen.length, 1);

      const closedPort = await freePort();
      const nowhere = new FpsClient({
        baseUrl: `http://127.0.0.1:${closedPort}`,
        apiKey: stack.apiKey,
        retry: { retries: 1, initialDelayMs: 10 },
      });
      await assert.rejects(
        nowhere.instrument('ins_x'),
        (err: unknown) => err instanceof FpsConnectionError && err.attempts === 2 && err.code === 'connection_failed',
      );
    });
  });
});
