// Makes the SDK's workflow worker threads load thread-patch.js before their own code: the SDK
// starts them with `new Worker(require.resolve('./workflow-worker-thread'))` (threaded-vm.js), so
// worker_threads.Worker is replaced, for this process, by a subclass that starts that one file
// through a two-line eval script instead. Import this before anything loads @temporalio/worker.
// Benchmark-only (issue 16), never shipped.
import path from 'node:path';
import workerThreads from 'node:worker_threads';

const VARIANTS = ['watchdog-off', 'stacks-off', 'both-off'];
const variant = process.env.SDK_AB_VARIANT ?? '';
if (!VARIANTS.includes(variant)) throw new Error(`SDK_AB_VARIANT must be one of ${VARIANTS.join(', ')}: ${variant}`);

const patch = path.join(__dirname, 'thread-patch.js');
const Original = workerThreads.Worker;
let patched = 0;

class PatchedWorker extends Original {
  constructor(filename: string | URL, options?: workerThreads.WorkerOptions) {
    const file = String(filename);
    if (!/workflow-worker-thread(\.js)?$/.test(file)) {
      super(filename, options);
      return;
    }
    patched++;
    const code = `require(${JSON.stringify(patch)}).install(${JSON.stringify(file)});\nrequire(${JSON.stringify(file)});`;
    super(code, { ...options, eval: true });
  }
}
(workerThreads as { Worker: typeof Original }).Worker = PatchedWorker;

/** How many SDK workflow threads were started through the patch (for the worker's log line). */
export const patchedThreads = () => patched;
export { variant };
