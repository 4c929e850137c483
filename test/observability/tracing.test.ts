// Tracing end to end with real processes: an in-process OTLP/HTTP receiver (JSON, /v1/traces) is
// the collector for the API and the worker; one purchase must arrive as one connected trace from
// the API's server span through the Update and the workflow to the activity and the FPS call.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { activeInstrument, call, until } from '../api/stack';
import { startProcessStack, type ProcessStack } from '../support/process-stack';

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
  attributes: Record<string, string | number | boolean | undefined>;
  links: Array<{ traceId: string; spanId: string }>;
}

/** OTLP/JSON attribute values: { stringValue } | { intValue } | { boolValue } … */
function attributesOf(list: Array<{ key: string; value: Record<string, unknown> }> | undefined) {
  const out: ReceivedSpan['attributes'] = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue;
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : (v as string | number | boolean);
  }
  return out;
}

async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a: { key: string }) => a.key === 'service.name')?.value
          ?.stringValue;
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              service,
              attributes: attributesOf(s.attributes),
              links: (s.links ?? []).map((l: { traceId: string; spanId: string }) => ({
                traceId: l.traceId,
                spanId: l.spanId,
              })),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('tracing (OTLP/HTTP from the API and the worker)', function () {
  this.timeout(240_000);
  let stack: ProcessStack;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    receiver = await startReceiver();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
    stack = await startProcessStack({
      name: 'obs-tracing',
      workerEnv: { ...otel, WORKER_METRICS_PORT: '0' },
      apiEnv: otel,
    });
  });
  after(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  it('one purchase is one connected trace: API request → Update → workflow → activity → FPS Pay', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-trace', {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount: '1.25', currency: 'USD' },
      headers: { 'idempotency-key': 'trace-1' },
    });
    assert.equal(bought.status, 201);

    const root = () =>
      receiver.spans.filter(
        (s) =>
          s.name === 'POST /instruments/:instrumentId/purchases' &&
          s.service === 'fps-api' &&
          s.attributes['http.response.status_code'] === 201,
      );
    let trace: ReceivedSpan[] = [];
    await until('the purchase trace reaches the receiver', async () => {
      const roots = root();
      if (roots.length !== 1) return false;
      trace = receiver.spans.filter((s) => s.traceId === roots[0].traceId);
      // Each process exports in batches: wait for every span the assertions name, not the first.
      return ['FPS Pay', 'RunActivity:pay', 'HandleUpdate:purchase'].every((name) =>
        trace.some((s) => s.name === name),
      );
    });
    const names = trace.map((s) => `${s.service}:${s.name}`);
    const byName = (name: string) => {
      const span = trace.find((s) => s.name === name);
      assert.ok(span, `no span ${name} in the trace: ${names.join(', ')}`);
      return span;
    };
    const api = byName('POST /instruments/:instrumentId/purchases');
    const update = trace.find((s) => s.service === 'fps-api' && /Update/.test(s.name) && s.parentSpanId === api.spanId);
    assert.ok(update, `no client Update span under the request: ${names.join(', ')}`);
    const handle = byName('HandleUpdate:purchase');
    assert.equal(handle.service, 'fps-worker');
    const activity = trace.find((s) => s.name === 'RunActivity:pay');
    assert.ok(activity, `no activity span: ${names.join(', ')}`);
    const fps = byName('FPS Pay');
    assert.equal(fps.parentSpanId, activity.spanId, 'the FPS call is a child of the activity');
    // Connected: every span but the root has its parent in the same trace.
    const ids = new Set(trace.map((s) => s.spanId));
    for (const span of trace)
      if (span !== api) assert.ok(span.parentSpanId && ids.has(span.parentSpanId), `${span.name} is not connected`);
  });

  it('the IPN that resolves a pending purchase is linked to the purchase’s trace', async () => {
    const { instrumentId } = await activeInstrument(stack, 'cust-trace-ipn', {
      type: 'postpaid',
      creditLimit: '50.00',
      globalAmountLimit: '500.00',
      currency: 'USD',
    });
    // .13 cents: Pending at FPS, Success after SANDBOX_PENDING_DELAY_MS, announced by IPN.
    const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount: '1.13', currency: 'USD' },
      headers: { 'idempotency-key': 'trace-pending-1' },
    });
    assert.equal(bought.status, 202, bought.text);
    const callerReference = bought.body.callerReference as string;
    assert.match(callerReference, new RegExp(`^${instrumentId}:`));
    await until('the pending purchase is resolved', async () => {
      const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
      return got.body.pending.length === 0;
    });

    let purchase: ReceivedSpan | undefined;
    let ipn: ReceivedSpan | undefined;
    await until('the purchase and the IPN spans reach the receiver', async () => {
      purchase = receiver.spans.find(
        (s) =>
          s.name === 'POST /instruments/:instrumentId/purchases' && s.attributes['http.response.status_code'] === 202,
      );
      ipn = receiver.spans.find(
        (s) => s.name === 'POST /fps/ipn' && s.links.some((l) => purchase && l.traceId === purchase.traceId),
      );
      return Boolean(purchase && ipn);
    });
    assert.ok(purchase && ipn);
    assert.equal(ipn.service, 'fps-api');
    assert.notEqual(ipn.traceId, purchase.traceId, 'the IPN comes later, from FPS: a trace of its own');
    assert.deepEqual(ipn.links, [{ traceId: purchase.traceId, spanId: purchase.spanId }], 'linked to the 202’s span');
    assert.equal(ipn.attributes['fps.pending_trace_id'], purchase.traceId);
    // The purchase's trace still reached FPS, and the IPN's trace goes on into the workflow's signal.
    assert.ok(receiver.spans.some((s) => s.traceId === purchase!.traceId && s.name === 'FPS Pay'));
    await until('the IPN’s signal reaches the workflow in the IPN’s trace', async () =>
      receiver.spans.some(
        (s) => s.traceId === ipn!.traceId && s.service === 'fps-worker' && /transactionStatusChanged/.test(s.name),
      ),
    );
    // Other IPNs of this stack (none resolved a 202) link nowhere else.
    for (const other of receiver.spans.filter((s) => s.name === 'POST /fps/ipn'))
      assert.ok(
        other.links.every((l) => l.traceId === purchase!.traceId),
        'only the pending purchase’s IPN is linked',
      );
  });
});
