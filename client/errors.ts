// Typed errors of the merchant client: every problem+json answer becomes an FpsApiError carrying
// the problem's `code` (switch on it, never on the message); a decline is its own subclass.
import type { OperationResult, Problem } from './types';

export class FpsApiError extends Error {
  override readonly name: string = 'FpsApiError';
  /** The problem's machine-readable code (api/README.md, "Error model"), e.g. `limit_exceeded`. */
  readonly code: string;
  readonly status: number;
  /** The request field, header or parameter at fault, when the API names one. */
  readonly field: string | undefined;
  readonly problem: Problem;
  /** The API's X-Request-Id, for its logs. */
  readonly requestId: string | undefined;

  constructor(problem: Problem, requestId?: string) {
    super(problem.detail ? `${problem.code}: ${problem.detail}` : `${problem.code}: ${problem.title}`);
    this.code = problem.code;
    this.status = problem.status;
    this.field = problem.field;
    this.problem = problem;
    this.requestId = requestId;
  }
}

/** 402 payment_declined: FPS refused the money operation; `operation` is the declined result. */
export class PaymentDeclinedError extends FpsApiError {
  override readonly name = 'PaymentDeclinedError';
  /** The FPS code, e.g. TransactionDenied, InsufficientBalance. */
  readonly declineCode: string | undefined;
  readonly operation: OperationResult | undefined;

  constructor(problem: Problem, requestId?: string) {
    super(problem, requestId);
    this.declineCode = typeof problem.declineCode === 'string' ? problem.declineCode : undefined;
    this.operation = problem.operation as OperationResult | undefined;
  }
}

/** No answer at all after every retry (connection refused or reset, a timeout). */
export class FpsConnectionError extends Error {
  override readonly name = 'FpsConnectionError';
  readonly code = 'connection_failed';
  constructor(
    message: string,
    /** How many requests were sent. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function apiError(problem: Problem, requestId?: string): FpsApiError {
  return problem.code === 'payment_declined'
    ? new PaymentDeclinedError(problem, requestId)
    : new FpsApiError(problem, requestId);
}
