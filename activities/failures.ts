// How FPS errors cross from activities to the workflow: the ApplicationFailure type and details.
// Pure (no imports): the workflow bundle imports it too.

/** Prefix of the ApplicationFailure type of every FPS error, e.g. `FpsError:InsufficientBalance`. */
export const FPS_FAILURE_PREFIX = 'FpsError:';
export const fpsFailureType = (code: string) => `${FPS_FAILURE_PREFIX}${code}`;

/** details[0] of an FPS ApplicationFailure. */
export interface FpsFailureDetails {
  code: string;
  message: string;
  requestId?: string;
  httpStatus?: number;
}

/** The FPS error an ApplicationFailure from the FPS activities carries, if it is one. */
export function fpsFailureDetails(failure: {
  type?: string | null;
  message?: string;
  details?: unknown[] | null;
}): FpsFailureDetails | undefined {
  if (!failure.type?.startsWith(FPS_FAILURE_PREFIX)) return undefined;
  const details = failure.details?.[0] as FpsFailureDetails | undefined;
  return details ?? { code: failure.type.slice(FPS_FAILURE_PREFIX.length), message: failure.message ?? '' };
}
