// OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set (nothing is loaded or
// wrapped otherwise). One trace per API request: the API's server span, the Temporal client's
// Update span, the workflow's spans (the SDK's interceptors, exported through a sink), the activity
// span and the FPS HTTP call's client span, all exported over OTLP/HTTP (JSON) to <endpoint>/v1/traces.
import { context, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { FpsCallObserver } from '../fps/client';

export const TRACER_NAME = 'fps-instruments';

export interface Tracing {
  tracer: Tracer;
  resource: Resource;
  processor: SpanProcessor;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** Registers the global tracer provider (W3C propagation, async-hooks context) for `service`. */
export function startTracing(service: string, endpoint: string): Tracing {
  const resource = resourceFromAttributes({ 'service.name': service });
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }), {
    scheduledDelayMillis: 500,
  });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register();
  return {
    tracer: trace.getTracer(TRACER_NAME),
    resource,
    processor,
    shutdown: () => provider.shutdown(),
  };
}

/** Runs `fn` inside a server span named `name` (the route template); its status follows the outcome. */
export async function inServerSpan<T>(
  tracer: Tracer,
  name: string,
  attributes: Record<string, string>,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** An FPS call observer that wraps each call in a client span (child of the activity's span). */
export function fpsCallSpans(tracer: Tracer, endpoint: string): FpsCallObserver {
  return {
    start(action) {
      const span = tracer.startSpan(
        `FPS ${action}`,
        { kind: SpanKind.CLIENT, attributes: { 'fps.action': action, 'server.address': endpoint } },
        context.active(),
      );
      return ({ httpStatus, errorCode }) => {
        if (httpStatus) span.setAttribute('http.response.status_code', httpStatus);
        if (errorCode) {
          span.setAttribute('fps.error_code', errorCode);
          span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode });
        }
        span.end();
      };
    },
  };
}

/** Both observers, one after the other (metrics and traces). */
export function bothObservers(...observers: Array<FpsCallObserver | undefined>): FpsCallObserver | undefined {
  const present = observers.filter((o): o is FpsCallObserver => o !== undefined);
  if (present.length <= 1) return present[0];
  return {
    start(action) {
      const ends = present.map((o) => o.start(action));
      return (end) => ends.forEach((e) => e(end));
    },
  };
}

/**
 * The workflow interceptors (inside the workflow sandbox) build spans with the OTel 1.x SDK the
 * Temporal package bundles; the 2.x exporter reads a parent's id from `parentSpanContext` and the
 * scope from `instrumentationScope`. This hands such spans on in the 2.x shape.
 */
export function workflowSpanProcessor(inner: SpanProcessor): SpanProcessor {
  return {
    onStart: () => undefined,
    onEnd(span: ReadableSpan) {
      const legacy = span as ReadableSpan & {
        parentSpanId?: string;
        instrumentationLibrary?: ReadableSpan['instrumentationScope'];
      };
      const own = span.spanContext();
      inner.onEnd({
        ...legacy,
        spanContext: () => own,
        parentSpanContext:
          legacy.parentSpanContext ??
          (legacy.parentSpanId
            ? { traceId: own.traceId, spanId: legacy.parentSpanId, traceFlags: own.traceFlags, isRemote: false }
            : undefined),
        instrumentationScope: legacy.instrumentationScope ??
          legacy.instrumentationLibrary ?? { name: 'temporal-workflow' },
      });
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
  };
}
