// Realistic requests and results of every FPS action, shared by the fps unit tests.
import type { FpsAction, FpsRequest, FpsResult } from '../../fps/actions';

const usd = (amount: number) => ({ amount, currency: 'USD' });

export const SAMPLE_REQUESTS: { [A in FpsAction]: FpsRequest<A> } = {
  Pay: {
    senderTokenId: 'P7GC7HLKBGN2ZSXN1MSEZ6R3U4QHDDNQHKJ5A7V4LJBI9MMFUZU5DS8SULSIZ3UB',
    transactionAmount: usd(1250),
    callerReference: 'inst-42:pay:order 1001/ü',
    senderDescription: 'Ebook: Durable Payments & Co',
  },
  Reserve: {
    senderTokenId: 'TOKEN-SU-1',
    transactionAmount: usd(999),
    callerReference: 'inst-45:reserve:order-7',
    senderDescription: 'Pre-order',
  },
  Settle: { reserveTransactionId: '14GN1B3C2RESERVE', transactionAmount: usd(500) },
  Refund: { transactionId: '14GN1B3C2EXAMPLE', callerReference: 'inst-42:refund:order-1001:1', refundAmount: usd(250) },
  Cancel: { transactionId: '14GN1B3C2RESERVE', description: 'buyer changed their mind' },
  FundPrepaid: {
    prepaidInstrumentId: 'PI-9X2',
    senderTokenId: 'FT-77A',
    fundingAmount: usd(5000),
    callerReference: 'inst-43:fund:2',
  },
  GetPrepaidBalance: { prepaidInstrumentId: 'PI-9X2' },
  SettleDebt: {
    creditInstrumentId: 'CI-5Q1',
    senderTokenId: 'ST-88B',
    settlementAmount: usd(2500),
    callerReference: 'inst-44:settle:3',
  },
  WriteOffDebt: { creditInstrumentId: 'CI-5Q1', adjustmentAmount: usd(100), callerReference: 'inst-44:writeoff:1' },
  GetDebtBalance: { creditInstrumentId: 'CI-5Q1' },
  GetOutstandingDebtBalance: {},
  GetTransactionStatus: { transactionId: '14GN1B3C2EXAMPLE' },
  GetTokenByCaller: { callerReference: 'inst-42:authorize' },
  CancelToken: { tokenId: 'PST-31C', reasonText: 'instrument closed' },
  VerifySignature: {
    urlEndPoint: 'https://shop.example.com/fps/ipn',
    httpParameters: 'transactionId=14GN1B3C2EXAMPLE&transactionStatus=SUCCESS&signature=abc%2Fdef%3D',
  },
};

export const SAMPLE_RESULTS: { [A in FpsAction]: FpsResult<A> } = {
  Pay: { transactionId: '14GN1B3C2EXAMPLE', transactionStatus: 'Pending' },
  Reserve: { transactionId: '14GN1B3C2RESERVE', transactionStatus: 'Reserved' },
  Settle: { transactionId: '14GN1B3C2SETTLE0', transactionStatus: 'Success' },
  Refund: { transactionId: '14GN1B3C2REFUND0', transactionStatus: 'Pending' },
  Cancel: { transactionId: '14GN1B3C2RESERVE', transactionStatus: 'Cancelled' },
  FundPrepaid: { transactionId: '14GN1B3C2FUND000', transactionStatus: 'Success' },
  GetPrepaidBalance: { availableBalance: usd(3750), prepaidFundingBalance: usd(5000) },
  SettleDebt: { transactionId: '14GN1B3C2SDEBT00', transactionStatus: 'Failure' },
  WriteOffDebt: { transactionId: '14GN1B3C2WOFF000', transactionStatus: 'Success' },
  GetDebtBalance: { availableBalance: usd(7500), pendingOutBalance: usd(0) },
  GetOutstandingDebtBalance: { outstandingBalance: usd(123456), pendingOutBalance: usd(5) },
  GetTransactionStatus: {
    transactionId: '14GN1B3C2EXAMPLE',
    transactionStatus: 'Success',
    callerReference: 'inst-42:pay:order 1001/ü',
    statusCode: 'Success',
    statusMessage: 'The transaction was successful & the payment instrument was charged <ok>.',
  },
  GetTokenByCaller: {
    tokenId: 'P7GC7HLKBGN2ZSXN1MSEZ6R3U4QHDDNQHKJ5A7V4LJBI9MMFUZU5DS8SULSIZ3UB',
    tokenStatus: 'Active',
    tokenType: 'SingleUse',
    callerReference: 'inst-42:authorize',
    dateInstalled: '2026-11-27T10:00:00Z',
  },
  CancelToken: {},
  VerifySignature: { verificationStatus: 'Success' },
};
