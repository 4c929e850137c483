// Settle (capture) and Cancel (void) carry no CallerReference: a lost answer is recognised by the
// reservation's status when the retry is refused with InvalidTransactionState. That must hold for
// every re-send, including the workflow's own re-send after the activity's attempts ran out (a new
// activity, attempt 1) when no IPN arrives, or the workflow records "declined" for money FPS moved.
import assert from 'node:assert/strict';
import { formatReport, reconcile, SandboxLedger } from '../../scripts/lib/reconcile';
import { activeInstrument, call, getStack, until, type Stack } from '../api/stack';

async function faults(stack: Stack, list: unknown[]): Promise<void> {
  const r = await fetch(`${stack.sandboxUrl}/admin/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(list),
  });
  assert.equal(r.status, 201, await r.text());
}

describe('capture and void whose answer was lost, then retried past the activity attempts', function () {
  this.timeout(90_000);
  let stack: Stack;

  before(async () => {
    stack = await getStack();
  });
  const ipn = (enabled: boolean) =>
    fetch(`${stack.sandboxUrl}/admin/ipn`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ enabled }),
    });
  afterEach(async () => {
    await fetch(`${stack.sandboxUrl}/admin/faults`, { method: 'DELETE' });
    await ipn(true);
  });

  for (const [operation, action, fpsStatus] of [
    ['capture', 'Settle', 'Success'],
    ['void', 'Cancel', 'Cancelled'],
  ] as const) {
    it(`${operation}: FPS did it, the answer was dropped, the FPS call's 5 attempts ran out → the workflow still ends approved`, async () => {
      const { instrumentId } = await activeInstrument(stack, `capture-retry-${operation}`, {
        type: 'single-use',
        amount: '7.00',
        currency: 'USD',
        singleUseMode: 'reserve',
      });
      const reserved = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '7.00', currency: 'USD' },
        headers: { 'idempotency-key': 'order-1' },
      });
      assert.equal(reserved.status, 201, reserved.text);
      // Attempt 1 is processed but its answer dropped; attempts 2-5 meet a busy FPS: the outcome is
      // unknown. The IPN that would tell is lost too: the workflow's own re-send has to find out.
      await ipn(false);
      await faults(stack, [
        { kind: 'drop', count: 1, actions: [action] },
        { kind: 'error', code: 'ServiceUnavailable', count: 4, actions: [action] },
      ]);
      const answer = await call(stack, 'POST', `/instruments/${instrumentId}/${operation}`, {
        body: {},
        headers: { 'idempotency-key': `${operation}-1` },
      });
      assert.ok([200, 202].includes(answer.status), `${answer.status} ${answer.text}`);
      const fps = await until(`FPS reservation ${fpsStatus}`, async () => {
        const tx = (await new SandboxLedger(stack.sandboxUrl).byCallerReference(`${instrumentId}:reserve:order-1`))[0];
        return tx?.status === fpsStatus ? tx : undefined;
      });
      const record = await until(
        `the ${operation} resolved in the workflow`,
        async () => {
          const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
          const r = got.body.transactions.find((t: { operation: string }) => t.operation === operation);
          return got.body.pending.length === 0 && r ? r : undefined;
        },
        30_000,
        200,
      );
      const report = await reconcile({
        client: stack.client,
        ledger: new SandboxLedger(stack.sandboxUrl),
        customerId: `capture-retry-${operation}`,
      });
      assert.equal(
        record.status,
        fpsStatus,
        `FPS ${fps.id} is ${fps.status}; the workflow recorded the ${operation} as ${record.status} (${record.reason?.code ?? ''}).\n${formatReport(report)}`,
      );
      assert.deepEqual(report.discrepancies, [], formatReport(report));
    });
  }
});
