// The API's Temporal retry backoff: a workflow that is continuing-as-new is retried at once; real
// overload keeps the SDK's long backoff (see api/temporal-retry.ts and bench/old-account.ts).
import assert from 'node:assert/strict';
import { CLOSING_RETRY_INITIAL_MS, initialRetryIntervalMs, temporalRetryInterceptors } from '../../api/temporal-retry';

describe('api/temporal-retry', () => {
  it('retries an Update refused because the workflow is continuing-as-new after milliseconds', () => {
    assert.equal(
      initialRetryIntervalMs({ code: 8, details: 'workflow operation can not be applied because workflow is closing' }),
      CLOSING_RETRY_INITIAL_MS,
    );
    assert.ok(CLOSING_RETRY_INITIAL_MS <= 50);
  });

  it('keeps the SDK defaults otherwise: 1 s for other RESOURCE_EXHAUSTED, 100 ms for other codes', () => {
    assert.equal(initialRetryIntervalMs({ code: 8, details: 'namespace rate limit exceeded' }), 1_000);
    assert.equal(initialRetryIntervalMs({ code: 8, details: '' }), 1_000);
    assert.equal(initialRetryIntervalMs({ code: 14, details: 'workflow is closing' }), 100);
  });

  it('builds one retry interceptor for Connection.connect()', () => {
    const interceptors = temporalRetryInterceptors();
    assert.equal(interceptors.length, 1);
    assert.equal(typeof interceptors[0], 'function');
  });
});
