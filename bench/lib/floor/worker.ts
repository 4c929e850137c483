// The throughput floor's worker (bench:throughput): the floor workflows (bench/lib/floor/workflows.ts)
// and their no-op local activity, in a process of its own like the product's worker, with the same
// worker settings (config/index.ts), so the CPU each process spends per Update compares with the
// CPU per purchase. Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE.
// Not a product entry point.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { config } from '../../../config';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const cfg = config();
  const connection = await NativeConnection.connect({ address: cfg.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.temporal.taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: { async nothing() {} },
    maxCachedWorkflows: cfg.temporal.worker.maxCachedWorkflows,
    maxConcurrentWorkflowTaskExecutions: cfg.temporal.worker.maxConcurrentWorkflowTaskExecutions,
    maxConcurrentLocalActivityExecutions: cfg.temporal.worker.maxConcurrentLocalActivityExecutions,
  });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  console.log('floor worker started');
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
