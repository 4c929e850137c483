// Instant Payment Notifications: the form parameters FPS POSTs to the merchant when a transaction
// changes status or a token is cancelled. No Node APIs, so workflow code may use it. Parsing does not
// check the signature: verify first (CallbackVerifier), then parse.
import { TRANSACTION_STATUSES, type FpsAction, type TransactionStatus } from './actions';
import { formatIpnAmount, MoneyError, parseIpnAmount, type Money } from './money';

export type IpnNotificationType = 'TransactionStatus' | 'TokenCancellation';

/** The `operation` values FPS names in IPNs, by the action that started the transaction. */
export const IPN_OPERATIONS = {
  Pay: 'PAY',
  Reserve: 'RESERVE',
  Settle: 'SETTLE',
  Refund: 'REFUND',
  Cancel: 'CANCEL',
  FundPrepaid: 'FUND_PREPAID',
  SettleDebt: 'SETTLE_DEBT',
  WriteOffDebt: 'WRITE_OFF_DEBT',
} as const satisfies Partial<Record<FpsAction, string>>;
export type IpnOperation = (typeof IPN_OPERATIONS)[keyof typeof IPN_OPERATIONS];

export interface TransactionStatusIpn {
  notificationType: 'TransactionStatus';
  transactionId: string;
  /** Normalised to the Query API's spelling (IPNs say SUCCESS, the API says Success). */
  transactionStatus: TransactionStatus;
  statusCode: string;
  /** '' when FPS sent none. */
  statusMessage: string;
  callerReference: string;
  /** One of IPN_OPERATIONS; kept as a string so an operation we do not model is not a parse error. */
  operation: string;
  transactionAmount: Money;
  /** Epoch seconds. */
  transactionDate: number;
  paymentMethod?: string;
  tokenId?: string;
}

export interface TokenCancellationIpn {
  notificationType: 'TokenCancellation';
  tokenId: string;
  callerReference?: string;
  tokenType?: string;
  statusCode?: string;
  statusMessage?: string;
}

export type Ipn = TransactionStatusIpn | TokenCancellationIpn;

export class IpnError extends Error {
  override readonly name = 'IpnError';
  constructor(
    message: string,
    readonly code: 'MissingParameter' | 'InvalidParameter',
    readonly parameter: string,
  ) {
    super(message);
  }
}

type IpnParams = Readonly<Record<string, string | undefined>>;

function required(params: IpnParams, name: string): string {
  const value = params[name];
  if (typeof value !== 'string' || value === '') throw new IpnError(`IPN lacks ${name}`, 'MissingParameter', name);
  return value;
}

function optional(params: IpnParams, name: string): string | undefined {
  const value = params[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** SUCCESS / Success / success -> Success; anything else is an error. */
export function normalizeTransactionStatus(value: string): TransactionStatus {
  const found = TRANSACTION_STATUSES.find((status) => status.toLowerCase() === value.toLowerCase());
  if (!found)
    throw new IpnError(`unknown transactionStatus ${JSON.stringify(value)}`, 'InvalidParameter', 'transactionStatus');
  return found;
}

/**
 * Form parameters -> typed IPN. Throws IpnError for a missing or malformed field; ignores others
 * (signature fields, fields we do not model).
 */
export function parseIpn(params: IpnParams): Ipn {
  const notificationType = required(params, 'notificationType');
  if (notificationType === 'TokenCancellation') {
    const ipn: TokenCancellationIpn = { notificationType, tokenId: required(params, 'tokenId') };
    for (const name of ['callerReference', 'tokenType', 'statusCode', 'statusMessage'] as const) {
      const value = optional(params, name);
      if (value !== undefined) ipn[name] = value;
    }
    return ipn;
  }
  if (notificationType !== 'TransactionStatus') {
    throw new IpnError(
      `unknown notificationType ${JSON.stringify(notificationType)}`,
      'InvalidParameter',
      'notificationType',
    );
  }

  let transactionAmount: Money;
  try {
    transactionAmount = parseIpnAmount(required(params, 'transactionAmount'));
  } catch (e) {
    if (e instanceof MoneyError)
      throw new IpnError(`transactionAmount: ${e.message}`, 'InvalidParameter', 'transactionAmount');
    throw e;
  }
  const date = required(params, 'transactionDate');
  // Epoch seconds; 12 digits reach far beyond any real date while staying a safe integer.
  if (!/^\d{1,12}$/.test(date))
    throw new IpnError(
      `transactionDate ${JSON.stringify(date)} is not epoch seconds`,
      'InvalidParameter',
      'transactionDate',
    );

  const ipn: TransactionStatusIpn = {
    notificationType,
    transactionId: required(params, 'transactionId'),
    transactionStatus: normalizeTransactionStatus(required(params, 'transactionStatus')),
    statusCode: required(params, 'statusCode'),
    statusMessage: optional(params, 'statusMessage') ?? '',
    callerReference: required(params, 'callerReference'),
    operation: required(params, 'operation'),
    transactionAmount,
    transactionDate: Number(date),
  };
  const paymentMethod = optional(params, 'paymentMethod');
  if (paymentMethod !== undefined) ipn.paymentMethod = paymentMethod;
  const tokenId = optional(params, 'tokenId');
  if (tokenId !== undefined) ipn.tokenId = tokenId;
  return ipn;
}

/**
 * Typed IPN -> unsigned form parameters, as FPS sends them (upper-case transactionStatus,
 * "USD 12.50", epoch seconds). The sandbox then signs them with signCallbackParams.
 */
export function buildIpnParams(ipn: Ipn): Record<string, string> {
  if (ipn.notificationType === 'TokenCancellation') {
    const params: Record<string, string> = { notificationType: ipn.notificationType, tokenId: ipn.tokenId };
    for (const name of ['callerReference', 'tokenType', 'statusCode', 'statusMessage'] as const) {
      const value = ipn[name];
      if (value !== undefined) params[name] = value;
    }
    return params;
  }
  if (!Number.isSafeInteger(ipn.transactionDate) || ipn.transactionDate < 0) {
    throw new TypeError(`transactionDate ${ipn.transactionDate} is not epoch seconds`);
  }
  const params: Record<string, string> = {
    notificationType: ipn.notificationType,
    transactionId: ipn.transactionId,
    transactionStatus: ipn.transactionStatus.toUpperCase(),
    statusCode: ipn.statusCode,
    statusMessage: ipn.statusMessage,
    callerReference: ipn.callerReference,
    operation: ipn.operation,
    transactionAmount: formatIpnAmount(ipn.transactionAmount),
    transactionDate: String(ipn.transactionDate),
  };
  if (ipn.paymentMethod !== undefined) params.paymentMethod = ipn.paymentMethod;
  if (ipn.tokenId !== undefined) params.tokenId = ipn.tokenId;
  return params;
}
