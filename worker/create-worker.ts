// Builds the instrument Worker: the one workflow, the FPS activities, settings from config.
// worker/main.ts runs it; tests and benchmarks reuse it with their own connection and task queue.
import { NativeConnection, Worker, type ActivityInterceptorsFactory, type WorkerOptions } from '@temporalio/worker';
import type { Resource } from '@opentelemetry/resources';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import { createActivities, type FpsActivities } from '../activities';
import { config } from '../config';

/** What the worker bundles: workflows/index.ts. */
export const WORKFLOWS_PATH = require.resolve('../workflows');

/**
 * Modules the workflow bundle evaluates once per workflow thread and shares between workflows,
 * instead of once per workflow (the SDK's reusable V8 context gives every workflow its own module
 * instances otherwise). Only pure, stateless modules belong here: XState, the machine definitions,
 * money and CallerReference helpers, FPS action constants, the FPS failure mapping. Measured with
 * bench/ (throughput, open-instruments): ~1/3 less memory per cached instrument, ~1 ms less worker
 * CPU per purchase, and no module evaluation when a workflow starts or is replayed after eviction.
 */
export const PRELOADED_WORKFLOW_MODULES: readonly string[] = [
  'xstate',
  require.resolve('../machines'),
  require.resolve('../fps/money'),
  require.resolve('../fps/caller-reference'),
  require.resolve('../fps/actions'),
  require.resolve('../activities/failures'),
];

export interface InstrumentWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Default: the real FPS activities on config().fps. */
  activities?: FpsActivities;
  /** A pre-built bundle (tests build it once per run); default: bundle WORKFLOWS_PATH now. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Activity interceptors (worker metrics). */
  activityInterceptors?: ActivityInterceptorsFactory[];
  /**
   * Tracing on: the SDK's OpenTelemetry workflow interceptors join the bundle (they only read the
   * Update's header and emit spans through a sink, so workflows stay deterministic) and activities
   * run in a span. Off (undefined): the bundle is exactly the one without tracing.
   */
  tracing?: { processor: SpanProcessor; resource: Resource };
  /** Anything else a caller wants to override (concurrency, identity, ...). */
  overrides?: Partial<
    Omit<WorkerOptions, 'connection' | 'namespace' | 'taskQueue' | 'activities' | 'workflowBundle' | 'workflowsPath'>
  >;
}

export async function createInstrumentWorker(options: InstrumentWorkerOptions): Promise<Worker> {
  const { temporal } = config();
  const w = temporal.worker;
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? temporal.namespace,
    taskQueue: options.taskQueue ?? temporal.taskQueue,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: { preloadModules: [...PRELOADED_WORKFLOW_MODULES] } }),
    activities: options.activities ?? createActivities(),
    maxCachedWorkflows: w.maxCachedWorkflows,
    maxConcurrentWorkflowTaskExecutions: w.maxConcurrentWorkflowTaskExecutions,
    maxConcurrentActivityTaskExecutions: w.maxConcurrentActivityTaskExecutions,
    maxConcurrentLocalActivityExecutions: w.maxConcurrentLocalActivityExecutions,
    shutdownGraceTime: w.shutdownGraceTimeMs,
    ...observabilityOptions(options),
    ...options.overrides,
  });
}

/** Interceptors and sinks for metrics and tracing (none when neither is asked for). */
function observabilityOptions(options: InstrumentWorkerOptions): Partial<WorkerOptions> {
  const { tracing } = options;
  const activity: ActivityInterceptorsFactory[] = [
    ...(tracing
      ? [
          (ctx: Parameters<ActivityInterceptorsFactory>[0]) => ({
            inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
            outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
          }),
        ]
      : []),
    // Inside the tracing interceptor, so the FPS call's span is the activity span's child.
    ...(options.activityInterceptors ?? []),
  ];
  if (!tracing && activity.length === 0) return {};
  return {
    interceptors: {
      activity,
      ...(tracing ? { workflowModules: [TRACING_WORKFLOW_INTERCEPTORS] } : {}),
    },
    // The SDK types these with the OTel 1.x SDK it bundles; workflowSpanProcessor adapts the spans.
    ...(tracing
      ? {
          sinks: {
            exporter: makeWorkflowExporter(
              tracing.processor as unknown as Parameters<typeof makeWorkflowExporter>[0],
              tracing.resource as unknown as Parameters<typeof makeWorkflowExporter>[1],
            ),
          },
        }
      : {}),
  };
}

/** The SDK's workflow-side OpenTelemetry interceptors (inbound, outbound, internals). */
export const TRACING_WORKFLOW_INTERCEPTORS =
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** A NativeConnection to config().temporal: TEMPORAL_ADDRESS, or the local dev server's port. */
export function connectWorker(): Promise<NativeConnection> {
  const { address, devPort, tls, apiKey } = config().temporal;
  return NativeConnection.connect({
    address: address || `127.0.0.1:${devPort}`,
    tls: tls || undefined,
    apiKey: apiKey || undefined,
  });
}
