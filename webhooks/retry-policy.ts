// When a failed delivery is tried again: exponential backoff from `initialMs`, doubling, capped at
// `maxMs`, jittered ±25% so endpoints coming back are not hit by every retry at once; none after
// the window (counted from the event's delivery being created). Pure, so tests can step it.
export interface RetrySettings {
  initialMs: number;
  maxMs: number;
  windowMs: number;
}

export type NextStep = { status: 'pending'; at: number } | { status: 'failed' };

/** The delay before the attempt after `attemptsMade` failed ones (1 → about initialMs). */
export function retryDelayMs(attemptsMade: number, s: RetrySettings, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attemptsMade - 1, 0), 52);
  const base = Math.min(s.initialMs * 2 ** exponent, s.maxMs);
  return Math.round(Math.min(s.maxMs, base * (0.75 + random() * 0.5)));
}

export function nextStep(
  attemptsMade: number,
  createdAt: number,
  now: number,
  s: RetrySettings,
  random: () => number = Math.random,
): NextStep {
  const at = now + retryDelayMs(attemptsMade, s, random);
  return at > createdAt + s.windowMs ? { status: 'failed' } : { status: 'pending', at };
}
