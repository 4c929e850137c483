// How the API's Temporal client retries refused calls. The SDK's default waits 1 s (×1.7 per
// attempt) after any RESOURCE_EXHAUSTED. One such refusal is routine and short-lived: an Update
// that arrives while the instrument workflow continues-as-new ("workflow is closing") is refused
// until the new run exists, a few milliseconds later. Waiting a second for it made every purchase
// in flight at a continue-as-new take ~2 s (bench/old-account.ts); it is retried after 20 ms
// instead. Real overload (rate limits, too many Updates in flight) keeps the SDK's long backoff.
import { defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type GrpcRetryOptions } from '@temporalio/client';

const GRPC_RESOURCE_EXHAUSTED = 8;
const WORKFLOW_CLOSING = /workflow is closing/i;
export const CLOSING_RETRY_INITIAL_MS = 20;

type Status = Parameters<GrpcRetryOptions['delayFunction']>[1];

/**
 * The "initial" interval of the SDK's backoff (delay = 1.7^attempt × initial × jitter): short for a
 * workflow that is continuing-as-new, else the SDK's documented defaults (1 s for
 * RESOURCE_EXHAUSTED, 100 ms for other retryable codes).
 */
export function initialRetryIntervalMs(status: Pick<Status, 'code' | 'details'>): number {
  if (status.code === GRPC_RESOURCE_EXHAUSTED)
    return WORKFLOW_CLOSING.test(status.details ?? '') ? CLOSING_RETRY_INITIAL_MS : 1_000;
  return 100;
}

/** Told about each retry (metrics): the gRPC code and whether the workflow was closing. */
export type RetryObserver = (grpcCode: number, reason: 'workflow_closing' | 'resource_exhausted' | 'other') => void;

/** `interceptors` for Connection.connect(): the SDK's retry interceptor with the backoff above. */
export function temporalRetryInterceptors(onRetry?: RetryObserver) {
  const options = defaultGrpcRetryOptions({ initialIntervalMs: initialRetryIntervalMs });
  if (onRetry) {
    const delay = options.delayFunction;
    options.delayFunction = (attempt, status) => {
      onRetry(
        status.code,
        status.code !== GRPC_RESOURCE_EXHAUSTED
          ? 'other'
          : WORKFLOW_CLOSING.test(status.details ?? '')
            ? 'workflow_closing'
            : 'resource_exhausted',
      );
      return delay(attempt, status);
    };
  }
  return [makeGrpcRetryInterceptor(options)];
}
