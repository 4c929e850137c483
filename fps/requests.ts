// Wire parameters of every FPS action: typed request -> Query API parameters (client) and
// Query API parameters -> typed request (sandbox), from one table so the two cannot drift.
import type { FpsAction, FpsRequest } from './actions';
import { FpsError } from './errors';
import { formatDecimal, MoneyError, parseDecimal, type Money } from './money';

type FieldKind = 'string' | 'money';
interface Field {
  /** Wire name; money fields expand to `<wire>.Value` and `<wire>.CurrencyCode`. */
  wire: string;
  key: string;
  kind: FieldKind;
  required: boolean;
}

const s = (wire: string, key: string, required = true): Field => ({ wire, key, kind: 'string', required });
const m = (wire: string, key: string, required = true): Field => ({ wire, key, kind: 'money', required });

export const ACTION_FIELDS: Readonly<Record<FpsAction, readonly Field[]>> = {
  Pay: [
    s('SenderTokenId', 'senderTokenId'),
    m('TransactionAmount', 'transactionAmount'),
    s('CallerReference', 'callerReference'),
    s('SenderDescription', 'senderDescription', false),
  ],
  Reserve: [
    s('SenderTokenId', 'senderTokenId'),
    m('TransactionAmount', 'transactionAmount'),
    s('CallerReference', 'callerReference'),
    s('SenderDescription', 'senderDescription', false),
  ],
  Settle: [s('ReserveTransactionId', 'reserveTransactionId'), m('TransactionAmount', 'transactionAmount', false)],
  Refund: [
    s('TransactionId', 'transactionId'),
    s('CallerReference', 'callerReference'),
    m('RefundAmount', 'refundAmount', false),
  ],
  Cancel: [s('TransactionId', 'transactionId'), s('Description', 'description', false)],
  FundPrepaid: [
    s('PrepaidInstrumentId', 'prepaidInstrumentId'),
    s('SenderTokenId', 'senderTokenId'),
    m('FundingAmount', 'fundingAmount'),
    s('CallerReference', 'callerReference'),
  ],
  GetPrepaidBalance: [s('PrepaidInstrumentId', 'prepaidInstrumentId')],
  SettleDebt: [
    s('CreditInstrumentId', 'creditInstrumentId'),
    s('SenderTokenId', 'senderTokenId'),
    m('SettlementAmount', 'settlementAmount'),
    s('CallerReference', 'callerReference'),
  ],
  WriteOffDebt: [
    s('CreditInstrumentId', 'creditInstrumentId'),
    m('AdjustmentAmount', 'adjustmentAmount'),
    s('CallerReference', 'callerReference'),
  ],
  GetDebtBalance: [s('CreditInstrumentId', 'creditInstrumentId')],
  GetOutstandingDebtBalance: [],
  GetTransactionStatus: [s('TransactionId', 'transactionId')],
  GetTokenByCaller: [s('CallerReference', 'callerReference', false), s('TokenId', 'tokenId', false)],
  CancelToken: [s('TokenId', 'tokenId'), s('ReasonText', 'reasonText', false)],
  VerifySignature: [s('UrlEndPoint', 'urlEndPoint'), s('HttpParameters', 'httpParameters')],
};

/** FPS limits CallerReference to 128 characters. */
export const MAX_CALLER_REFERENCE_LENGTH = 128;

/** Typed request -> the action's wire parameters (without Action/auth/signature parameters). */
export function encodeRequest<A extends FpsAction>(action: A, request: FpsRequest<A>): Record<string, string> {
  const params: Record<string, string> = {};
  const values = request as unknown as Record<string, unknown>;
  for (const field of ACTION_FIELDS[action]) {
    const value = values[field.key];
    if (value === undefined) {
      if (field.required) throw new TypeError(`${action}: ${field.key} is required`);
      continue;
    }
    if (field.kind === 'money') {
      const money = value as Money;
      params[`${field.wire}.Value`] = formatDecimal(money.amount, money.currency);
      params[`${field.wire}.CurrencyCode`] = money.currency;
    } else {
      params[field.wire] = String(value);
    }
  }
  return params;
}

const invalid = (message: string) => new FpsError('InvalidParams', message, undefined, 400);

/**
 * Wire parameters -> typed request, rejecting what real FPS rejected: missing required
 * parameters and malformed amounts (InvalidParams), zero amounts (AmountOutOfRange).
 */
export function decodeRequest<A extends FpsAction>(
  action: A,
  params: Readonly<Record<string, string | undefined>>,
): FpsRequest<A> {
  const request: Record<string, unknown> = {};
  for (const field of ACTION_FIELDS[action]) {
    if (field.kind === 'money') {
      const value = params[`${field.wire}.Value`];
      const currency = params[`${field.wire}.CurrencyCode`];
      if (value === undefined && currency === undefined) {
        if (field.required) throw invalid(`${field.wire}.Value and ${field.wire}.CurrencyCode are required`);
        continue;
      }
      if (value === undefined || currency === undefined)
        throw invalid(`${field.wire} needs both .Value and .CurrencyCode`);
      let amount: number;
      try {
        amount = parseDecimal(value, currency);
      } catch (e) {
        if (e instanceof MoneyError) {
          throw e.code === 'AmountOutOfRange'
            ? new FpsError('AmountOutOfRange', `${field.wire}: ${e.message}`, undefined, 400)
            : invalid(`${field.wire}: ${e.message}`);
        }
        throw e;
      }
      if (amount === 0)
        throw new FpsError('AmountOutOfRange', `${field.wire} must be greater than zero`, undefined, 400);
      request[field.key] = { amount, currency } satisfies Money;
    } else {
      const value = params[field.wire];
      if (value === undefined || value === '') {
        if (field.required) throw invalid(`${field.wire} is required`);
        continue;
      }
      if (field.wire === 'CallerReference' && value.length > MAX_CALLER_REFERENCE_LENGTH) {
        throw invalid(`CallerReference is longer than ${MAX_CALLER_REFERENCE_LENGTH} characters`);
      }
      request[field.key] = value;
    }
  }
  if (action === 'GetTokenByCaller' && (request.callerReference === undefined) === (request.tokenId === undefined)) {
    throw invalid('exactly one of CallerReference and TokenId is required');
  }
  return request as unknown as FpsRequest<A>;
}
