// The reproduction's workflows: one local activity with a start-to-close timeout, retried by the
// SDK locally (the backoff is under localRetryThreshold) or through a workflow timer (threshold 0).
import { proxyLocalActivities, type LocalActivityOptions } from '@temporalio/workflow';

export interface ReproActivities {
  flaky(key: string, failFor: number, slowMs: number): Promise<string>;
}

const options: LocalActivityOptions = {
  startToCloseTimeout: '3s',
  retry: { initialInterval: '50ms', maximumAttempts: 3 },
};
const locally = proxyLocalActivities<ReproActivities>(options);
const byTimer = proxyLocalActivities<ReproActivities>({ ...options, localRetryThreshold: 0 });

export async function retriedLocalActivity(
  key: string,
  failFor: number,
  slowMs: number,
  retryByTimer: boolean,
): Promise<string> {
  return await (retryByTimer ? byTimer : locally).flaky(key, failFor, slowMs);
}
