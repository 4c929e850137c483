// Builds the instrument Worker: the one workflow, the FPS activities, settings from config.
// worker/main.ts runs it; tests and benchmarks reuse it with their own connection and task queue.
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type FpsActivities } from '../activities';
import { config } from '../config';

/** What the worker bundles: workflows/index.ts. */
export const WORKFLOWS_PATH = require.resolve('../workflows');

export interface InstrumentWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Default: the real FPS activities on config().fps. */
  activities?: FpsActivities;
  /** A pre-built bundle (tests build it once per run); default: bundle WORKFLOWS_PATH now. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Anything else a caller wants to override (concurrency, identity, ...). */
  overrides?: Partial<Omit<WorkerOptions, 'connection' | 'namespace' | 'taskQueue' | 'activities' | 'workflowBundle' | 'workflowsPath'>>;
}

export async function createInstrumentWorker(options: InstrumentWorkerOptions): Promise<Worker> {
  const { temporal } = config();
  const w = temporal.worker;
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? temporal.namespace,
    taskQueue: options.taskQueue ?? temporal.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: options.activities ?? createActivities(),
    maxCachedWorkflows: w.maxCachedWorkflows,
    maxConcurrentWorkflowTaskExecutions: w.maxConcurrentWorkflowTaskExecutions,
    maxConcurrentActivityTaskExecutions: w.maxConcurrentActivityTaskExecutions,
    maxConcurrentLocalActivityExecutions: w.maxConcurrentLocalActivityExecutions,
    shutdownGraceTime: w.shutdownGraceTimeMs,
    ...options.overrides,
  });
}

/** A NativeConnection to config().temporal: TEMPORAL_ADDRESS, or the local dev server's port. */
export function connectWorker(): Promise<NativeConnection> {
  const { address, devPort, tls, apiKey } = config().temporal;
  return NativeConnection.connect({
    address: address || `127.0.0.1:${devPort}`,
    tls: tls || undefined,
    apiKey: apiKey || undefined,
  });
}
