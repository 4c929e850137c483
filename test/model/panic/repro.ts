// Minimal reproduction of `panicked at .../local_activities.rs:997:33: receive half not dropped`
// (Temporal SDK core, @temporalio/worker 1.24.0). Run: npx tsx test/model/panic/repro.ts
// (starts its own dev server unless TEMPORAL_ADDRESS is set). See test/model/PANIC.md.
//
// A local activity with a startToCloseTimeout fails once and is retried locally. Each attempt's
// TimeoutBag::mark_started spawns a start-to-close timer and overwrites the previous JoinHandle
// without aborting it, so attempt 1's timer lives on. The workflow completes, the worker shuts
// down (the LA manager's cancel channel receiver is dropped), the process lives on: 3 s after
// attempt 1 started, the orphaned timer sends on the closed channel and its tokio task panics.
import { randomUUID } from 'node:crypto';
import { NativeConnection, Runtime, DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { getTestTemporal } from '../../support/temporal';

// REPRO_RETRY=timer: localRetryThreshold 0, every retry is a new LA after a workflow timer.
const BY_TIMER = process.env.REPRO_RETRY === 'timer';
// REPRO_SLOW_MS=2000: each attempt takes 2 s, so attempt 2 (its own budget ends at ~5 s) is
// still running when attempt 1's orphaned timer fires at 3 s: it is timed out early.
const SLOW_MS = Number(process.env.REPRO_SLOW_MS ?? 0);

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const t = await getTestTemporal();
  const taskQueue = `panic-repro-${randomUUID().slice(0, 8)}`;
  const attempts = new Map<string, number>();
  const connection = await NativeConnection.connect({ address: t.address });
  const worker = await Worker.create({
    connection,
    namespace: t.namespace,
    taskQueue,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('./workflows'),
      logger: new DefaultLogger('WARN'),
    }),
    activities: {
      async flaky(key: string, failFor: number, slowMs: number): Promise<string> {
        const n = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, n);
        const started = Date.now();
        await new Promise((resolve) => setTimeout(resolve, slowMs));
        if (n <= failFor) throw new Error(`attempt ${n} fails`);
        return `attempt ${n} succeeded after ${Date.now() - started} ms`;
      },
    },
  });
  const client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
  const started = Date.now();
  const result = await worker.runUntil(
    client.workflow
      .execute('retriedLocalActivity', {
        taskQueue,
        workflowId: taskQueue,
        args: ['k', 1, SLOW_MS, BY_TIMER],
      })
      .catch((err: Error) => {
        const cause = (err.cause as { cause?: { timeoutType?: string } } | undefined)?.cause;
        return `FAILED after ${Date.now() - started} ms: ${err.message}, ${cause?.timeoutType ?? ''}`;
      }),
  );
  console.log(
    `after ${[...attempts.values()][0]} attempt(s) the workflow completed with "${result}"; worker shut down; waiting 5 s with the runtime alive`,
  );
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  await connection.close();
  await t.server?.stop();
  console.log('done (a panic, if any, was printed above by the SDK core)');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
