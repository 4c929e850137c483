// One money operation at a time, in arrival order: a FIFO lock made of chained promises
// (deterministic inside a workflow; no timers).
export class Mutex {
  #tail: Promise<void> = Promise.resolve();
  #holders = 0;

  /** True while an operation holds the lock or waits for it. */
  get busy(): boolean {
    return this.#holders > 0;
  }

  /**
   * Runs `fn` after every earlier caller's `fn` has finished (successfully or not). Plain promise
   * chaining rather than async/await: every promise created in workflow context costs the SDK a
   * captured stack trace, and this is on every money operation's path.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.#holders++;
    const result = this.#tail.then(fn);
    const release = () => {
      this.#holders--;
    };
    this.#tail = result.then(release, release);
    return result;
  }
}
