// Pure classification of FPS answers: what a transaction status means for an operation, and what
// a failed activity call says (a refusal by FPS, or no answer at all).
import { ActivityFailure, ApplicationFailure, log } from '@temporalio/workflow';
import { fpsFailureDetails } from '../../activities/failures';
import type { RecordedOperation } from '../../activities/record-contract';
import { type TransactionStatus } from '../../fps/actions';
import { type OpenOperation } from '../state';

/** What one FPS call told us. */
export type FpsAnswer =
  | { kind: 'status'; transactionId: string; status: TransactionStatus; statusCode?: string; statusMessage?: string }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'unknown'; message: string }
  /** The pay call found the purchase already counted in the record (asked to look first): nothing was sent. */
  | { kind: 'recorded'; row: RecordedOperation };

/** What a transaction status means for a given operation. */
export type Verdict = 'succeeded' | 'failed' | 'pending' | 'ignore';

export function verdictFor(op: Pick<OpenOperation, 'operation' | 'action'>, status: TransactionStatus): Verdict {
  if (status === 'Pending') return 'pending';
  switch (op.operation) {
    case 'purchase':
      if (op.action === 'Reserve') return status === 'Reserved' || status === 'Success' ? 'succeeded' : 'failed';
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    case 'capture':
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    case 'void':
      return status === 'Cancelled' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    default:
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
  }
}

export function classifyFailure(err: unknown): Extract<FpsAnswer, { kind: 'refused' | 'unknown' }> {
  if (err instanceof ActivityFailure || err instanceof ApplicationFailure) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    if (cause instanceof ApplicationFailure) {
      const fps = fpsFailureDetails(cause);
      if (fps && cause.nonRetryable) return { kind: 'refused', code: fps.code, message: fps.message };
    }
    return { kind: 'unknown', message: cause?.message ?? err.message };
  }
  log.error('unexpected error from an activity call', { error: String(err), type: (err as Error)?.constructor?.name });
  throw err;
}
