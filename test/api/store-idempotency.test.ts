// Issue 11, defect 4: the storefront's create route declares an Idempotency-Key; a retried click
// (same key, same body) must answer the same instrument, not start a second one.
import assert from 'node:assert/strict';
import { getStack, until, type Stack } from './stack';

describe('api: storefront instrument creation is idempotent by Idempotency-Key', function () {
  this.timeout(60_000);
  let stack: Stack;
  let cookie: string;

  before(async () => {
    stack = await getStack();
    const session = await fetch(`${stack.apiUrl}/store/api/session`);
    cookie = (session.headers.get('set-cookie') ?? '').split(';')[0];
    assert.ok(cookie, 'a storefront session cookie');
  });

  const create = async (key: string, body: Record<string, unknown>) => {
    const response = await fetch(`${stack.apiUrl}/store/api/instruments`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, text, body: JSON.parse(text) as Record<string, any> };
  };

  it('a retried click answers the same instrument (200) and starts no second workflow', async () => {
    const key = `click-${Date.now()}`;
    const first = await create(key, { type: 'prepaid', fundingAmount: '5.00' });
    assert.equal(first.status, 201, first.text);
    const again = await create(key, { type: 'prepaid', fundingAmount: '5.00' });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.instrumentId, first.body.instrumentId);
    assert.equal(again.body.authorizationUrl, first.body.authorizationUrl);
    // Visibility is eventually consistent: wait until the first one is listed, then there is only it.
    const ids = await until('the instrument listed', async () => {
      const listed: string[] = [];
      for await (const execution of stack.client.workflow.list({
        query: `CustomerId = "${first.body.customerId}"`,
      }))
        listed.push(execution.workflowId);
      return listed.length > 0 && listed;
    });
    assert.deepEqual(ids, [first.body.workflowId]);
  });

  it('the same key with another body is refused (422 idempotency_key_reused)', async () => {
    const key = `click-other-${Date.now()}`;
    const first = await create(key, { type: 'prepaid', fundingAmount: '5.00' });
    assert.equal(first.status, 201, first.text);
    const other = await create(key, { type: 'prepaid', fundingAmount: '6.00' });
    assert.equal(other.status, 422, other.text);
    assert.equal(other.body.code, 'idempotency_key_reused', other.text);
  });
});
