// Errors as RFC 9457 problem details (application/problem+json): one ProblemError type that
// routes throw, and one place that renders it. Never an HTML error page, never a stack trace.
import { STATUS_CODES, type Server } from 'node:http';
import type { Response } from 'express';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Machine-readable problem codes; `type` is `/problems/<code>` (documented in api/README.md). */
export type ProblemCode =
  | 'missing_api_key'
  | 'invalid_api_key'
  | 'not_found'
  | 'instrument_not_found'
  | 'validation_failed'
  | 'invalid_parameter'
  | 'invalid_amount'
  | 'invalid_currency'
  | 'limit_exceeded'
  | 'unknown_purchase'
  | 'idempotency_key_mismatch'
  | 'idempotency_key_reused'
  | 'invalid_state'
  | 'instrument_closed'
  | 'duplicate_id'
  | 'payment_declined'
  | 'malformed_json'
  | 'malformed_request'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'callback_unverified'
  | 'callback_invalid'
  | 'session_required'
  | 'cross_origin_request'
  | 'too_many_requests'
  | 'rate_limited'
  | 'operation_timeout'
  | 'temporal_unavailable'
  | 'webhook_endpoint_not_found'
  | 'event_not_found'
  | 'url_not_allowed'
  | 'ledger_unavailable'
  | 'internal_error';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail?: string;
  /** The request field at fault: a body path ("fundingAmount", "items.0.id") or a header name. */
  field?: string;
  [extension: string]: unknown;
}

const TITLES: Record<ProblemCode, string> = {
  missing_api_key: 'API key required',
  invalid_api_key: 'API key not recognised',
  not_found: 'Not found',
  instrument_not_found: 'Instrument not found',
  validation_failed: 'Request is invalid',
  invalid_parameter: 'Invalid query parameter',
  invalid_amount: 'Invalid amount',
  invalid_currency: 'Invalid currency',
  limit_exceeded: 'Limit exceeded',
  unknown_purchase: 'Unknown purchase',
  idempotency_key_mismatch: 'Idempotency-Key and id disagree',
  idempotency_key_reused: 'Idempotency key reused with a different request',
  invalid_state: 'Operation not allowed in the instrument state',
  instrument_closed: 'Instrument is closed',
  duplicate_id: 'Operation id already used',
  payment_declined: 'Payment declined',
  malformed_json: 'Malformed JSON',
  malformed_request: 'Malformed request',
  payload_too_large: 'Request body too large',
  unsupported_media_type: 'Unsupported media type',
  callback_unverified: 'Callback signature not verified',
  callback_invalid: 'Callback parameters invalid',
  session_required: 'Storefront session required',
  cross_origin_request: 'Cross-origin request refused',
  too_many_requests: 'Too many operations in flight',
  rate_limited: 'Too many requests',
  operation_timeout: 'Operation still running',
  temporal_unavailable: 'Workflow service unavailable',
  webhook_endpoint_not_found: 'Webhook endpoint not found',
  event_not_found: 'Event not found',
  url_not_allowed: 'URL not allowed',
  ledger_unavailable: 'The record is not configured',
  internal_error: 'Internal error',
};

export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  constructor(
    readonly status: number,
    readonly code: ProblemCode,
    detail?: string,
    readonly extra: { field?: string; headers?: Record<string, string>; [key: string]: unknown } = {},
  ) {
    super(detail ?? TITLES[code]);
  }

  toProblem(): Problem {
    const { headers: _headers, ...extensions } = this.extra;
    return {
      type: `/problems/${this.code}`,
      title: TITLES[this.code],
      status: this.status,
      code: this.code,
      detail: this.message,
      ...extensions,
    };
  }
}

export const problemTitle = (code: ProblemCode) => TITLES[code];

export function sendProblem(res: Response, error: ProblemError): void {
  for (const [name, value] of Object.entries(error.extra.headers ?? {})) res.setHeader(name, value);
  res.status(error.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(error.toProblem()));
}

export const validationFailed = (field: string | undefined, detail: string, extra: Record<string, unknown> = {}) =>
  new ProblemError(422, 'validation_failed', detail, { field, ...extra });

/**
 * Requests Node's HTTP parser rejects before Express sees them (control characters or a bare CR/LF
 * in a header, a header over the size limit) still get the problem+json error model.
 */
export function answerMalformedHttp(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = JSON.stringify({
      type: '/problems/malformed_request',
      title: TITLES.malformed_request,
      status,
      code: 'malformed_request',
      detail: 'the request is not valid HTTP',
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
