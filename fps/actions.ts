// The FPS actions this project speaks (API 2008-09-17), as typed requests and results.
// Amounts are Money (integer minor units + currency); the wire form lives in fps/requests.ts.
import type { Money } from './money';

export const FPS_API_VERSION = '2008-09-17';
/** Versions a server accepts; it answers in the namespace of the requested one. */
export const FPS_API_VERSIONS = ['2008-09-17', '2010-08-28'] as const;
export const fpsNamespace = (version: string) => `http://fps.amazonaws.com/doc/${version}/`;

export type TransactionStatus = 'Cancelled' | 'Failure' | 'Pending' | 'Reserved' | 'Success';
export const TRANSACTION_STATUSES: readonly TransactionStatus[] = [
  'Cancelled',
  'Failure',
  'Pending',
  'Reserved',
  'Success',
];
/** A status that never changes again. */
export const isTerminalStatus = (s: TransactionStatus) => s === 'Success' || s === 'Failure' || s === 'Cancelled';

export interface TransactionResult {
  transactionId: string;
  transactionStatus: TransactionStatus;
}

export interface PayRequest {
  senderTokenId: string;
  transactionAmount: Money;
  callerReference: string;
  senderDescription?: string;
}
export type ReserveRequest = PayRequest;
export interface SettleRequest {
  reserveTransactionId: string;
  /** Defaults to the whole reserved amount. */
  transactionAmount?: Money;
}
export interface RefundRequest {
  transactionId: string;
  callerReference: string;
  /** Defaults to everything still refundable. */
  refundAmount?: Money;
}
export interface CancelRequest {
  transactionId: string;
  description?: string;
}
export interface FundPrepaidRequest {
  prepaidInstrumentId: string;
  /** The funding token from the SetupPrepaid pipeline. */
  senderTokenId: string;
  fundingAmount: Money;
  callerReference: string;
}
export interface GetPrepaidBalanceRequest {
  prepaidInstrumentId: string;
}
export interface PrepaidBalanceResult {
  availableBalance: Money;
  prepaidFundingBalance: Money;
}
export interface SettleDebtRequest {
  creditInstrumentId: string;
  /** The settlement token from the SetupPostpaid pipeline. */
  senderTokenId: string;
  settlementAmount: Money;
  callerReference: string;
}
export interface WriteOffDebtRequest {
  creditInstrumentId: string;
  adjustmentAmount: Money;
  callerReference: string;
}
export interface GetDebtBalanceRequest {
  creditInstrumentId: string;
}
export interface DebtBalanceResult {
  availableBalance: Money;
  pendingOutBalance: Money;
}
export type GetOutstandingDebtBalanceRequest = Record<string, never>;
export interface OutstandingDebtResult {
  outstandingBalance: Money;
  pendingOutBalance: Money;
}
export interface GetTransactionStatusRequest {
  transactionId: string;
}
export interface TransactionStatusResult extends TransactionResult {
  callerReference: string;
  statusCode: string;
  statusMessage: string;
}
export type GetTokenByCallerRequest =
  { callerReference: string; tokenId?: undefined } | { tokenId: string; callerReference?: undefined };
export type TokenStatus = 'Active' | 'Inactive';
export type TokenType =
  | 'SingleUse'
  | 'Multiuse'
  | 'Recurring'
  | 'Unrestricted'
  | 'PrepaidSender'
  | 'PrepaidFunding'
  | 'CreditSender'
  | 'SettlementToken';
export interface TokenResult {
  tokenId: string;
  tokenStatus: TokenStatus;
  tokenType: string;
  callerReference: string;
  /** ISO 8601 */
  dateInstalled: string;
}
export interface CancelTokenRequest {
  tokenId: string;
  reasonText?: string;
}
export type CancelTokenResult = Record<string, never>;
export interface VerifySignatureRequest {
  urlEndPoint: string;
  /** The callback's parameters, form-encoded exactly as received. */
  httpParameters: string;
}
export interface VerifySignatureResult {
  verificationStatus: 'Success' | 'Failure';
}

/** Every action: its request and its result. */
export interface FpsActions {
  Pay: { request: PayRequest; result: TransactionResult };
  Reserve: { request: ReserveRequest; result: TransactionResult };
  Settle: { request: SettleRequest; result: TransactionResult };
  Refund: { request: RefundRequest; result: TransactionResult };
  Cancel: { request: CancelRequest; result: TransactionResult };
  FundPrepaid: { request: FundPrepaidRequest; result: TransactionResult };
  GetPrepaidBalance: { request: GetPrepaidBalanceRequest; result: PrepaidBalanceResult };
  SettleDebt: { request: SettleDebtRequest; result: TransactionResult };
  WriteOffDebt: { request: WriteOffDebtRequest; result: TransactionResult };
  GetDebtBalance: { request: GetDebtBalanceRequest; result: DebtBalanceResult };
  GetOutstandingDebtBalance: { request: GetOutstandingDebtBalanceRequest; result: OutstandingDebtResult };
  GetTransactionStatus: { request: GetTransactionStatusRequest; result: TransactionStatusResult };
  GetTokenByCaller: { request: GetTokenByCallerRequest; result: TokenResult };
  CancelToken: { request: CancelTokenRequest; result: CancelTokenResult };
  VerifySignature: { request: VerifySignatureRequest; result: VerifySignatureResult };
}
export type FpsAction = keyof FpsActions;
export type FpsRequest<A extends FpsAction> = FpsActions[A]['request'];
export type FpsResult<A extends FpsAction> = FpsActions[A]['result'];

export const FPS_ACTIONS: readonly FpsAction[] = [
  'Pay',
  'Reserve',
  'Settle',
  'Refund',
  'Cancel',
  'FundPrepaid',
  'GetPrepaidBalance',
  'SettleDebt',
  'WriteOffDebt',
  'GetDebtBalance',
  'GetOutstandingDebtBalance',
  'GetTransactionStatus',
  'GetTokenByCaller',
  'CancelToken',
  'VerifySignature',
];
export const isFpsAction = (name: unknown): name is FpsAction =>
  typeof name === 'string' && (FPS_ACTIONS as readonly string[]).includes(name);

/**
 * What the workflows' activities need from a payment processor. FpsClient implements it; another
 * processor could be plugged in behind the same calls without touching workflows.
 */
export interface PaymentGateway {
  call<A extends FpsAction>(action: A, request: FpsRequest<A>): Promise<FpsResult<A>>;
}
