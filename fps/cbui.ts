// Co-Branded UI: the signed URL that sends the buyer to FPS to authorise a token (or a prepaid /
// postpaid instrument), and the parser of what FPS appends to the return URL.
import { assertPositiveMinorUnits, formatDecimal, type Money } from './money';
import { MAX_CALLER_REFERENCE_LENGTH } from './requests';
import { rfc3986, signCbuiParams, signingHost, toQueryString, type HmacMethod } from './signature';
import type { CbuiPipeline } from './cbui-return';

export * from './cbui-return';

export const CBUI_VERSION = '2009-01-09';

interface CbuiCommon {
  /** The pipeline start URL, e.g. https://authorize.payments-sandbox.amazon.com/cobranded-ui/actions/start. */
  endpoint: string;
  /** The caller's AWS access key id. */
  callerKey: string;
  secretKey: string;
  /** Where FPS sends the buyer back; may carry its own query (it is signed as one value). */
  returnUrl: string;
  paymentReason?: string;
  /**
   * Sent as `currencyCode` when given (it must match the amounts). When absent, it is sent only for
   * non-USD amounts: FPS defaults to USD, and the independent vectors omit it for USD.
   */
  currencyCode?: string;
  signatureMethod?: HmacMethod;
}

export type CbuiSingleUse = CbuiCommon & { pipeline: 'SingleUse'; callerReference: string; transactionAmount: Money };
export type CbuiSetupPrepaid = CbuiCommon & {
  pipeline: 'SetupPrepaid';
  callerReferenceSender: string;
  callerReferenceFunding: string;
  fundingAmount: Money;
};
export type CbuiSetupPostpaid = CbuiCommon & {
  pipeline: 'SetupPostpaid';
  callerReferenceSender: string;
  callerReferenceSettlement: string;
  creditLimit: Money;
  globalAmountLimit: Money;
};
export type CbuiRequest = CbuiSingleUse | CbuiSetupPrepaid | CbuiSetupPostpaid;

/** The pipeline's own parameters: wire name -> reference or amount. */
function pipelineParams(request: CbuiRequest): { references: Record<string, string>; amounts: Record<string, Money> } {
  switch (request.pipeline) {
    case 'SingleUse':
      return {
        references: { callerReference: request.callerReference },
        amounts: { transactionAmount: request.transactionAmount },
      };
    case 'SetupPrepaid':
      return {
        references: {
          callerReferenceSender: request.callerReferenceSender,
          callerReferenceFunding: request.callerReferenceFunding,
        },
        amounts: { fundingAmount: request.fundingAmount },
      };
    case 'SetupPostpaid':
      return {
        references: {
          callerReferenceSender: request.callerReferenceSender,
          callerReferenceSettlement: request.callerReferenceSettlement,
        },
        amounts: { creditLimit: request.creditLimit, globalAmountLimit: request.globalAmountLimit },
      };
    default:
      throw new TypeError(`unknown CBUI pipeline ${JSON.stringify((request as { pipeline: unknown }).pipeline)}`);
  }
}

/** The unsigned CBUI parameters of a request (what signCbuiParams signs). Throws TypeError/MoneyError on bad input. */
export function cbuiParams(request: CbuiRequest): Record<string, string> {
  if (!request.callerKey) throw new TypeError('CBUI callerKey is required');
  const returnUrl = new URL(request.returnUrl);
  if (returnUrl.protocol !== 'http:' && returnUrl.protocol !== 'https:')
    throw new TypeError('CBUI returnUrl must be http(s)');
  const { references, amounts } = pipelineParams(request);

  const params: Record<string, string> = {
    callerKey: request.callerKey,
    pipelineName: request.pipeline satisfies CbuiPipeline,
    // As given, not URL-normalised: the merchant's endpoint string is what the buyer comes back to.
    returnURL: request.returnUrl,
    version: CBUI_VERSION,
  };
  for (const [name, reference] of Object.entries(references)) {
    if (!reference || reference.length > MAX_CALLER_REFERENCE_LENGTH) {
      throw new TypeError(`CBUI ${name} must be 1..${MAX_CALLER_REFERENCE_LENGTH} characters`);
    }
    params[name] = reference;
  }
  const currencies = new Set(Object.values(amounts).map((money) => money.currency));
  if (request.currencyCode !== undefined) currencies.add(request.currencyCode);
  if (currencies.size !== 1)
    throw new TypeError(`CBUI amounts and currencyCode must share one currency, got ${[...currencies].join(', ')}`);
  const [currency] = currencies;
  for (const [name, money] of Object.entries(amounts)) {
    assertPositiveMinorUnits(money.amount);
    params[name] = formatDecimal(money.amount, money.currency);
  }
  if (request.currencyCode !== undefined || currency !== 'USD') params.currencyCode = currency;
  if (request.paymentReason !== undefined) params.paymentReason = request.paymentReason;
  return params;
}

/**
 * The signed URL to redirect the buyer to: the endpoint, then the parameters in canonical order,
 * then `signature` (lower case, as CBUI wants it), signed for the endpoint's host[:port] and path.
 */
export function buildCbuiUrl(request: CbuiRequest): string {
  const endpoint = new URL(request.endpoint);
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')
    throw new TypeError('CBUI endpoint must be http(s)');
  if (endpoint.search || endpoint.hash) throw new TypeError('CBUI endpoint must not carry a query or fragment');
  const host = signingHost(endpoint.host, endpoint.protocol as 'http:' | 'https:');
  const { signature, ...signed } = signCbuiParams(
    cbuiParams(request),
    { host, path: endpoint.pathname },
    request.secretKey,
    request.signatureMethod,
  );
  return `${endpoint.origin}${endpoint.pathname}?${toQueryString(signed)}&signature=${rfc3986(signature)}`;
}
