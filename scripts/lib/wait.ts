// Readiness checks shared by `npm start` and the test harness: poll until a service answers,
// and fail fast, with the service's last output, if its process dies meanwhile.
import { delay, describeExit, type ManagedChild } from './children';

export interface WaitOptions {
  timeoutMs?: number;
  /** The process serving it: if it exits, stop waiting and report its last output. */
  child?: ManagedChild;
  intervalMs?: number;
}

/**
 * Calls `probe` until it resolves; returns its value. Each failure is remembered so the timeout
 * error says what went wrong last, not just "timed out".
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 30_000, child, intervalMs = 100 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (child && !child.running) {
      throw new Error(
        `${child.name} exited (${describeExit(child.exitInfo!)}) while waiting for ${what}\n${child.tail()}`,
      );
    }
    try {
      return await probe();
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      const tail = child ? `\n--- last output of ${child.name} ---\n${child.tail()}` : '';
      throw new Error(`${what} not ready after ${timeoutMs} ms (last error: ${reason})${tail}`);
    }
    await delay(intervalMs);
  }
}

/** Waits until GET `url` answers 200. */
export async function waitForHttpOk(url: string, options: WaitOptions = {}): Promise<void> {
  await waitUntil(
    url,
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    },
    options,
  );
}
