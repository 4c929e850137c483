// Proves the test harness end to end: a real Temporal server (started or given by
// TEMPORAL_ADDRESS), a worker with a bundled workflow and an activity, and the search attributes
// the instruments rely on.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { getTestTemporal, startTestWorker, testClient, testConnection, type TestWorker } from '../support/temporal';
import { InstrumentStateKey, smokeWorkflow, type SmokeActivities } from './fixtures/smoke-workflows';

const CustomerIdKey = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
const InstrumentTypeKey = defineSearchAttributeKey('InstrumentType', SearchAttributeType.KEYWORD);

/** temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD (@temporalio/proto is not a direct dependency). */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

const activities: SmokeActivities = {
  async greet(name) {
    return `hello, ${name}`;
  },
};

describe('Temporal test harness (smoke)', function () {
  let worker: TestWorker;

  before(async function () {
    this.timeout(60_000); // first use bundles the workflow code (seconds on 2 cores)
    worker = await startTestWorker({ workflowsPath: require.resolve('./fixtures/smoke-workflows'), activities });
  });

  after(async () => {
    await worker?.stop();
  });

  it('registers the CustomerId, InstrumentType and InstrumentState search attributes as Keyword', async () => {
    const connection = await testConnection();
    const { namespace } = await getTestTemporal();
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    for (const name of ['CustomerId', 'InstrumentType', 'InstrumentState']) {
      assert.equal(customAttributes?.[name], INDEXED_VALUE_TYPE_KEYWORD, `${name} should be registered as Keyword`);
    }
  });

  it('runs a workflow that calls an activity, with search attributes set at start and by the workflow', async () => {
    const client = await testClient();
    const customerId = `cust-${randomUUID()}`;
    const handle = await client.workflow.start(smokeWorkflow, {
      taskQueue: worker.taskQueue,
      workflowId: `smoke-${randomUUID()}`,
      args: ['FPS'],
      typedSearchAttributes: [
        { key: CustomerIdKey, value: customerId },
        { key: InstrumentTypeKey, value: 'Prepaid' },
        { key: InstrumentStateKey, value: 'Started' },
      ],
    });

    assert.equal(await handle.result(), 'hello, FPS');

    const { typedSearchAttributes } = await handle.describe();
    assert.equal(typedSearchAttributes.get(CustomerIdKey), customerId);
    assert.equal(typedSearchAttributes.get(InstrumentTypeKey), 'Prepaid');
    assert.equal(typedSearchAttributes.get(InstrumentStateKey), 'Greeted');

    // Visibility answers queries on them (what listing a customer's instruments will use).
    const found = [];
    for await (const wf of client.workflow.list({ query: `CustomerId = '${customerId}'` })) found.push(wf.workflowId);
    assert.deepEqual(found, [handle.workflowId]);
  });
});
