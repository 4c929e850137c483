// One money operation at a time, in arrival order: a FIFO lock made of chained promises
// (deterministic inside a workflow; no timers).
export class Mutex {
  #tail: Promise<void> = Promise.resolve();
  #holders = 0;

  /** True while an operation holds the lock or waits for it. */
  get busy(): boolean {
    return this.#holders > 0;
  }

  /** Runs `fn` after every earlier caller's `fn` has finished (successfully or not). */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.#holders++;
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      return await fn();
    } finally {
      this.#holders--;
      release();
    }
  }
}
