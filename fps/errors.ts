// FPS error codes and their classification: which answers are worth a retry with the same
// CallerReference, and which are the final word on a request.

export const RETRYABLE_FPS_CODES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ConcurrentModification',
  'OriginalTransactionIncomplete',
  // Not FPS codes: what the client reports when no XML answer arrived at all.
  'NetworkError',
  'Timeout',
]);

/** The error codes the project produces (sandbox) and handles (client); see shared fps-api.md. */
export const FPS_ERROR_CODES = [
  'InvalidParams',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'RequestExpired',
  'AuthFailure',
  'InvalidTokenId',
  'InvalidTokenId_Sender',
  'TokenNotActive_Sender',
  'SameTokenIdUsedMultipleTimes',
  'TokenUsageError',
  'InsufficientBalance',
  'AccountLimitsExceeded',
  'InstrumentExpired',
  'InactiveInstrument',
  'InstrumentAccessDenied',
  'PrepaidFundingLimitExceeded',
  'AmountOutOfRange',
  'DuplicateRequest',
  'InvalidTransactionId',
  'InvalidTransactionState',
  'SettleAmountGreaterThanReserveAmount',
  'SettleAmountGreaterThanDebt',
  'RefundAmountExceeded',
  'TransactionFullyRefundedAlready',
  'OriginalTransactionIncomplete',
  'TransactionDenied',
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ConcurrentModification',
  'InvalidAction',
] as const;
export type FpsErrorCode = (typeof FPS_ERROR_CODES)[number] | 'NetworkError' | 'Timeout' | 'MalformedResponse';

/** HTTP status the sandbox answers each error with (FPS: 400 caller errors, 5xx service trouble). */
export function httpStatusFor(code: string): number {
  switch (code) {
    case 'InternalError':
      return 500;
    case 'ServiceUnavailable':
    case 'Throttling':
      return 503;
    case 'InvalidClientTokenId':
    case 'SignatureDoesNotMatch':
    case 'AuthFailure':
      return 403;
    default:
      return 400;
  }
}

export function isRetryableFpsCode(code: string, httpStatus?: number): boolean {
  return RETRYABLE_FPS_CODES.has(code) || (httpStatus !== undefined && httpStatus >= 500);
}

/** A typed FPS error: the error XML's code and message, or a transport failure. */
export class FpsError extends Error {
  override readonly name = 'FpsError';
  readonly retryable: boolean;
  constructor(
    readonly code: FpsErrorCode | string,
    message: string,
    readonly requestId: string | undefined,
    readonly httpStatus: number | undefined,
  ) {
    super(`${code}: ${message}`);
    this.retryable = isRetryableFpsCode(code, httpStatus);
  }
}

export const isFpsError = (e: unknown): e is FpsError => e instanceof FpsError;
