// What a Temporal client error means to an HTTP caller. Update rejections carry the workflow's
// UpdateRejection type (workflows/messages.ts); everything else is about reaching the service.
import {
  ApplicationFailure,
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { UpdateRejection } from '../workflows/messages';
import { ProblemError } from './problem';

const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_UNAVAILABLE = 14;

function grpcCode(err: unknown): number | undefined {
  const candidate = err instanceof ServiceError ? err.cause : err;
  const code = (candidate as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The server refused the call for load: e.g. too many Updates in flight on one workflow. */
export const isResourceExhausted = (err: unknown) => grpcCode(err) === GRPC_RESOURCE_EXHAUSTED;

/**
 * The server dropped an Update that no workflow task accepted or rejected (it then answers "wasn't
 * processed by worker"). Seen when many Updates race with a workflow task that runs a local
 * activity. Nothing was written to history, so sending the same Update id again is safe. The
 * server gives no structured reason, only this message.
 */
export function isUnprocessedUpdate(err: unknown): boolean {
  return err instanceof WorkflowUpdateFailedError && /wasn't processed by worker/i.test(err.cause?.message ?? '');
}

export const isWorkflowNotFound = (err: unknown) => err instanceof WorkflowNotFoundError;

/** An Update's rejection (validator or handler) as its ApplicationFailure, if that is what it was. */
export function updateRejection(err: unknown): ApplicationFailure | undefined {
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) return err.cause;
  return undefined;
}

const REJECTIONS: Record<string, { status: number; code: ProblemError['code']; field?: string }> = {
  [UpdateRejection.InvalidState]: { status: 409, code: 'invalid_state' },
  [UpdateRejection.InvalidAmount]: { status: 422, code: 'invalid_amount', field: 'amount' },
  [UpdateRejection.InvalidCurrency]: { status: 422, code: 'invalid_currency', field: 'currency' },
  [UpdateRejection.LimitExceeded]: { status: 422, code: 'limit_exceeded', field: 'amount' },
  [UpdateRejection.UnknownPurchase]: { status: 422, code: 'unknown_purchase', field: 'purchaseId' },
  [UpdateRejection.DuplicateId]: { status: 409, code: 'duplicate_id' },
  [UpdateRejection.InvalidRequest]: { status: 422, code: 'validation_failed' },
};

/**
 * The problem an HTTP caller gets for a Temporal error. Anything unrecognised is rethrown (the
 * error handler answers 500 and logs it): an unknown failure must not look like a bad request.
 */
export function temporalProblem(err: unknown, instrumentId?: string): ProblemError {
  if (err instanceof ProblemError) return err;
  if (isUnprocessedUpdate(err)) {
    return new ProblemError(503, 'too_many_requests', 'the instrument is busy; retry with the same Idempotency-Key', {
      headers: { 'Retry-After': '1' },
    });
  }
  const rejection = updateRejection(err);
  if (rejection) {
    const mapped = REJECTIONS[rejection.type ?? ''];
    if (mapped)
      return new ProblemError(
        mapped.status,
        mapped.code,
        rejection.message,
        mapped.field ? { field: mapped.field } : {},
      );
    throw err;
  }
  if (err instanceof WorkflowNotFoundError) {
    return new ProblemError(404, 'instrument_not_found', `no instrument ${instrumentId ?? err.workflowId}`);
  }
  if (err instanceof WorkflowExecutionAlreadyStartedError) {
    return new ProblemError(409, 'duplicate_id', `instrument ${instrumentId ?? err.workflowId} already exists`);
  }
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || grpcCode(err) === GRPC_DEADLINE_EXCEEDED) {
    return new ProblemError(
      504,
      'operation_timeout',
      'the operation did not finish in time; retry with the same Idempotency-Key to get its result',
      {
        headers: { 'Retry-After': '1' },
      },
    );
  }
  if (isResourceExhausted(err)) {
    return new ProblemError(
      503,
      'too_many_requests',
      'too many operations in flight on this instrument; retry with the same Idempotency-Key',
      {
        headers: { 'Retry-After': '1' },
      },
    );
  }
  if (grpcCode(err) === GRPC_UNAVAILABLE) {
    return new ProblemError(503, 'temporal_unavailable', 'the workflow service cannot be reached', {
      headers: { 'Retry-After': '2' },
    });
  }
  throw err;
}
