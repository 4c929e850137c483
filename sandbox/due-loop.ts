// One timer that runs work when the database says something is due (a Pending transaction to
// resolve, an IPN to retry). The database is the schedule, so nothing is lost on restart.

export class DueLoop {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly nextDueAt: () => number | undefined,
    private readonly runDue: () => Promise<void> | void,
    private readonly onError: (error: unknown) => void,
    /** Re-check at least this often, in case a wake-up was missed. */
    private readonly maxSleepMs = 30_000,
  ) {}

  /** Re-reads the schedule; call after anything that may have made work due sooner. */
  wake(): void {
    if (this.#stopped || this.#running) return; // a running pass wakes again when it ends
    clearTimeout(this.#timer);
    const next = this.nextDueAt();
    if (next === undefined) return;
    const delay = Math.min(Math.max(0, next - Date.now()), this.maxSleepMs);
    this.#timer = setTimeout(() => this.#run(), delay);
  }

  #run(): void {
    this.#timer = undefined;
    this.#running = (async () => {
      try {
        await this.runDue();
      } catch (e) {
        this.onError(e);
      }
    })().finally(() => {
      this.#running = undefined;
      this.wake();
    });
  }

  /** No new passes; waits for the current one. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
