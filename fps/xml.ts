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
  typeof v === 'object' &&
  v !== null &&
  typeof (v as Money).amount === 'number' &&
  typeof (v as Money).currency === 'string';

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
export function buildResponseXml<A extends FpsAction>(
  action: A,
  result: FpsResult<A>,
  requestId: string,
  version = FPS_API_VERSION,
): string {
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

type FieldShape = 'string' | 'optionalString' | 'money' | 'transactionStatus' | 'tokenStatus' | 'verificationStatus';
const TRANSACTION: Readonly<Record<string, FieldShape>> = {
  transactionId: 'string',
  transactionStatus: 'transactionStatus',
};

/**
 * What each result must contain. The client checks it so that a truncated or foreign answer becomes
 * MalformedResponse here, not an `undefined` deep inside a workflow.
 */
const RESULT_SHAPES: Readonly<Record<FpsAction, Readonly<Record<string, FieldShape>>>> = {
  Pay: TRANSACTION,
  Reserve: TRANSACTION,
  Settle: TRANSACTION,
  Refund: TRANSACTION,
  Cancel: TRANSACTION,
  FundPrepaid: TRANSACTION,
  SettleDebt: TRANSACTION,
  WriteOffDebt: TRANSACTION,
  GetPrepaidBalance: { availableBalance: 'money', prepaidFundingBalance: 'money' },
  GetDebtBalance: { availableBalance: 'money', pendingOutBalance: 'money' },
  GetOutstandingDebtBalance: { outstandingBalance: 'money', pendingOutBalance: 'money' },
  // StatusMessage may be empty or absent for some statuses; it is informational only.
  GetTransactionStatus: {
    ...TRANSACTION,
    callerReference: 'string',
    statusCode: 'string',
    statusMessage: 'optionalString',
  },
  GetTokenByCaller: {
    tokenId: 'string',
    tokenStatus: 'tokenStatus',
    tokenType: 'string',
    callerReference: 'string',
    dateInstalled: 'string',
  },
  CancelToken: {},
  VerifySignature: { verificationStatus: 'verificationStatus' },
};

const ENUMS: Partial<Record<FieldShape, readonly string[]>> = {
  transactionStatus: TRANSACTION_STATUSES,
  tokenStatus: ['Active', 'Inactive'],
  verificationStatus: ['Success', 'Failure'],
};

function readMoney(key: string, value: unknown): Money {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${key} is not an amount`);
  const { CurrencyCode, Value } = value as Record<string, unknown>;
  if (typeof CurrencyCode !== 'string' || typeof Value !== 'string')
    throw new Error(`${key} needs one CurrencyCode and one Value`);
  return { currency: CurrencyCode, amount: parseDecimal(Value, CurrencyCode) };
}

function readField(key: string, shape: FieldShape, value: unknown): unknown {
  if (value === undefined) {
    if (shape === 'optionalString') return '';
    throw new Error(`missing ${pascal(key)}`);
  }
  if (shape === 'money') return readMoney(key, value);
  // Repeated elements parse as arrays and nested ones as objects: neither is a scalar field.
  if (typeof value !== 'string') throw new Error(`${pascal(key)} is not a single text element`);
  const allowed = ENUMS[shape];
  if (allowed && !allowed.includes(value)) throw new Error(`unknown ${pascal(key)} ${JSON.stringify(value)}`);
  return value;
}

function malformed(detail: string, httpStatus: number): FpsError {
  return new FpsError('MalformedResponse', `unreadable FPS response: ${detail}`, undefined, httpStatus);
}

/** Parses XML text into a plain object tree, or returns the parser's complaint. */
function parseDocument(xml: string): Record<string, unknown> | string {
  if (typeof xml !== 'string') return 'body is not text';
  try {
    const doc: unknown = parser.parse(xml, true);
    return typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : 'no document';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const asRecord = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
const asText = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Parses an error document (FPS `<Response><Errors>` or AWS `<ErrorResponse>`) into FpsError. Never throws. */
export function parseErrorXml(xml: string, httpStatus: number): FpsError {
  const doc = parseDocument(xml);
  if (typeof doc === 'string') return malformed(doc, httpStatus);
  const root = asRecord(doc.Response) ?? asRecord(doc.ErrorResponse);
  const errors = root?.Errors !== undefined ? asRecord(root.Errors)?.Error : root?.Error;
  const error = asRecord(Array.isArray(errors) ? errors[0] : undefined);
  const code = asText(error?.Code);
  if (!root || !error || !code) return malformed(`HTTP ${httpStatus} without an FPS error code`, httpStatus);
  const requestId = asText(root.RequestID) ?? asText(root.RequestId);
  return new FpsError(code, asText(error.Message) ?? '', requestId || undefined, httpStatus);
}

/**
 * Parses an HTTP answer from FPS: 2xx with the action's response element becomes the typed result
 * (with its RequestId), anything else becomes an FpsError. Throws only FpsError: the FPS error,
 * or MalformedResponse for anything unreadable, incomplete or of another action.
 */
export function parseResponseXml<A extends FpsAction>(
  action: A,
  xml: string,
  httpStatus = 200,
): FpsResult<A> & { requestId?: string } {
  if (!(httpStatus >= 200 && httpStatus <= 299)) throw parseErrorXml(xml, httpStatus);
  const doc = parseDocument(xml);
  if (typeof doc === 'string') throw malformed(doc, httpStatus);
  const response = asRecord(doc[`${action}Response`]);
  if (response === undefined) {
    if (doc.Response !== undefined || doc.ErrorResponse !== undefined) throw parseErrorXml(xml, httpStatus);
    throw malformed(`no <${action}Response> element`, httpStatus);
  }
  const requestId = asText(asRecord(response.ResponseMetadata)?.RequestId) || undefined;
  const shape = RESULT_SHAPES[action];
  let fields: Record<string, unknown> = {};
  if (!NO_RESULT.has(action)) {
    const resultElement = asRecord(response[`${action}Result`]);
    const container = RESULT_CONTAINER[action];
    const found = container ? asRecord(resultElement?.[container]) : resultElement;
    if (found === undefined)
      throw malformed(`no <${action}Result>${container ? `<${container}>` : ''} element`, httpStatus);
    fields = found;
  }
  const result: Record<string, unknown> = {};
  try {
    // Fields FPS added beyond what we model (e.g. a token's FriendlyName) pass through if they are text.
    for (const [name, value] of Object.entries(fields)) {
      if (typeof value === 'string') result[camel(name)] = value;
    }
    for (const [key, fieldShape] of Object.entries(shape))
      result[key] = readField(key, fieldShape, fields[pascal(key)]);
  } catch (e) {
    throw malformed(e instanceof Error ? e.message : String(e), httpStatus);
  }
  return { ...(result as FpsResult<A>), requestId };
}
