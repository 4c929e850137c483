// The one way services log: pino JSON lines on stdout, one event per line, tagged with the
// service name, so `npm start` can prefix/pretty-print them and production can ship them as-is.
import { trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';
import { config } from './index';

export type { Logger };

/**
 * A logger for one service or module: `createLogger('sandbox').info({ callerReference }, 'pay')`.
 * Level comes from LOG_LEVEL. Common secret-bearing fields are redacted as a safety net; the rule
 * is still never to log secrets in the first place.
 */
export function createLogger(name: string): Logger {
  return pino(
    {
      level: config().logLevel,
      base: { service: name },
      // ISO time and a level *name* keep the raw lines readable without a pretty-printer.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Tracing on (OTEL_EXPORTER_OTLP_ENDPOINT): each line names the trace and span it was logged in.
      ...(config().observability.otlpEndpoint ? { mixin: traceIds } : {}),
      redact: {
        paths: [
          'secretKey',
          'apiKey',
          'password',
          'authorization',
          '*.secretKey',
          '*.apiKey',
          '*.password',
          '*.authorization',
          'headers.authorization',
          'req.headers.authorization',
        ],
        censor: '[redacted]',
      },
    },
    stdout(),
  );
}

let destination: pino.DestinationStream | undefined;

/**
 * The process's one stdout destination, written asynchronously: a log line no longer costs the
 * request a synchronous write(2) (7 % of the API's thread and 14 % of the sandbox's under load,
 * bench/RESULTS.md). Lines are not held back (no minimum length), only coalesced while a write is
 * in flight; pino writes whatever is still queued synchronously when the process exits, so a fatal
 * line logged just before process.exit() is not lost (test/unit/logger.test.ts).
 */
function stdout(): pino.DestinationStream {
  destination ??= pino.destination({ dest: 1, sync: false });
  return destination;
}

function traceIds(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}
