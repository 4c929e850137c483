// FPS XML: building responses (the sandbox) and parsing them into typed results or FpsError
// (the client). One mapping table serves both directions, and the round trip is unit-tested.
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { FPS_API_VERSION, fpsNamespace, TRANSACTION_STATUSES, type FpsAction, type FpsResult } from './actions';
import { FpsError } from './errors';
import { parseDecimal, formatDecimal, type Money } from './money';

/** Results that FPS wraps in one more element inside <ActionResult>. */
const RESULT_CONTAINER: Partial<Record<FpsAction, string>> = {
  GetPrepaidBalance: 'PrepaidBalance',
  GetDebtBalance: 'DebtBalance',
  GetOutstandingDebtBalance: 'OutstandingDebt',
  GetTokenByCaller: 'Token',
};
/** CancelToken answers with metadata only. */
const NO_RESULT: ReadonlySet<FpsAction> = new Set(['CancelToken']);

const pascal = (key: string) => key[0].toUpperCase() + key.slice(1);
const camel = (key: string) => key[0].toLowerCase() + key.slice(1);
const isMoney = (v: unknown): v is Money =>
  typeof v === 'object' && v !== null && typeof (v as Money).amount === 'number' && typeof (v as Money).currency === 'string';

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false });
const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (name) => name === 'Error',
});

function toXmlValue(value: unknown): unknown {
  if (isMoney(value)) return { CurrencyCode: value.currency, Value: formatDecimal(value.amount, value.currency) };
  return value;
}

/** A success response, e.g. <PayResponse xmlns=...><PayResult>...</PayResult><ResponseMetadata>. */
export function buildResponseXml<A extends FpsAction>(action: A, result: FpsResult<A>, requestId: string, version = FPS_API_VERSION): string {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result as object)) {
    if (value !== undefined) fields[pascal(key)] = toXmlValue(value);
  }
  const container = RESULT_CONTAINER[action];
  const body: Record<string, unknown> = { '@xmlns': fpsNamespace(version) };
  if (!NO_RESULT.has(action)) body[`${action}Result`] = container ? { [container]: fields } : fields;
  body.ResponseMetadata = { RequestId: requestId };
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [`${action}Response`]: body })}`;
}

/** The FPS error document. */
export function buildErrorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    Response: { Errors: { Error: { Code: code, Message: message } }, RequestID: requestId },
  })}`;
}

function fromXmlValue(key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && 'CurrencyCode' in value && 'Value' in value) {
    const { CurrencyCode, Value } = value as { CurrencyCode: string; Value: string };
    return { currency: CurrencyCode, amount: parseDecimal(String(Value), String(CurrencyCode)) } satisfies Money;
  }
  if (key === 'transactionStatus' && !TRANSACTION_STATUSES.includes(value as never)) {
    throw new Error(`unknown TransactionStatus ${JSON.stringify(value)}`);
  }
  return typeof value === 'object' && value !== null ? value : String(value);
}

function malformed(detail: string, httpStatus: number): FpsError {
  return new FpsError('MalformedResponse', `unreadable FPS response: ${detail}`, undefined, httpStatus);
}

/** Parses an error document (FPS `<Response><Errors>` or AWS `<ErrorResponse>`) into FpsError. */
export function parseErrorXml(xml: string, httpStatus: number): FpsError {
  let doc: Record<string, any>;
  try {
    doc = parser.parse(xml, true);
  } catch (e) {
    return malformed((e as Error).message, httpStatus);
  }
  const root = doc.Response ?? doc.ErrorResponse;
  const error = root?.Errors?.Error?.[0] ?? root?.Error?.[0];
  if (!error?.Code) return malformed(`HTTP ${httpStatus} without an FPS error code`, httpStatus);
  return new FpsError(String(error.Code), String(error.Message ?? ''), root.RequestID ?? root.RequestId, httpStatus);
}

/**
 * Parses an HTTP answer from FPS: 2xx with the action's response element becomes the typed result
 * (with its RequestId), anything else becomes an FpsError.
 */
export function parseResponseXml<A extends FpsAction>(action: A, xml: string, httpStatus = 200): FpsResult<A> & { requestId?: string } {
  if (httpStatus < 200 || httpStatus > 299) throw parseErrorXml(xml, httpStatus);
  let doc: Record<string, any>;
  try {
    doc = parser.parse(xml, true);
  } catch (e) {
    throw malformed((e as Error).message, httpStatus);
  }
  const response = doc[`${action}Response`];
  if (response === undefined || typeof response !== 'object') {
    if (doc.Response?.Errors || doc.ErrorResponse) throw parseErrorXml(xml, httpStatus);
    throw malformed(`no <${action}Response> element`, httpStatus);
  }
  const requestId: string | undefined = response.ResponseMetadata?.RequestId;
  if (NO_RESULT.has(action)) return { requestId } as FpsResult<A> & { requestId?: string };
  const resultElement = response[`${action}Result`];
  const container = RESULT_CONTAINER[action];
  const fields = container ? resultElement?.[container] : resultElement;
  if (fields === undefined || typeof fields !== 'object') throw malformed(`no <${action}Result> element`, httpStatus);
  const result: Record<string, unknown> = {};
  try {
    for (const [key, value] of Object.entries(fields)) result[camel(key)] = fromXmlValue(camel(key), value);
  } catch (e) {
    throw malformed((e as Error).message, httpStatus);
  }
  return { ...(result as FpsResult<A>), requestId };
}
