// The buyer's way into FPS: the signed Co-Branded UI URL for an instrument, and the pipeline that
// belongs to an instrument type. CallerReferences come from the instrument id, so the return URL
// (and every IPN) names the instrument it belongs to: `<instrumentId>:<kind>`.
import type { Config } from '../config';
import { buildCbuiUrl, type CbuiPipeline, type CbuiRequest } from '../fps/cbui';
import { callerReferenceFor } from '../fps/caller-reference';
import type { InstrumentInput, InstrumentType } from '../workflows/messages';

export const PIPELINE_BY_TYPE: Record<InstrumentType, CbuiPipeline> = {
  prepaid: 'SetupPrepaid',
  postpaid: 'SetupPostpaid',
  'single-use': 'SingleUse',
};

export const returnUrlFor = (cfg: Config) => `${cfg.api.publicUrl}/fps/return`;
export const ipnUrlFor = (cfg: Config) => `${cfg.api.publicUrl}/fps/ipn`;

/** The instrument a CallerReference belongs to: everything before the first ':'. */
export function instrumentIdOfCallerReference(callerReference: string | undefined): string | undefined {
  if (!callerReference) return undefined;
  const at = callerReference.indexOf(':');
  return at > 0 ? callerReference.slice(0, at) : undefined;
}

export function authorizationUrl(cfg: Config, input: InstrumentInput): string {
  const { instrumentId, currency } = input;
  const common = {
    endpoint: cfg.fps.cbuiEndpoint,
    callerKey: cfg.fps.accessKeyId,
    secretKey: cfg.fps.secretKey,
    returnUrl: returnUrlFor(cfg),
    paymentReason: input.description,
  };
  const money = (amount: number | undefined) => ({ amount: amount ?? 0, currency });
  let request: CbuiRequest;
  switch (input.type) {
    case 'prepaid':
      request = {
        ...common,
        pipeline: 'SetupPrepaid',
        callerReferenceSender: callerReferenceFor(instrumentId, 'sender'),
        callerReferenceFunding: callerReferenceFor(instrumentId, 'funding'),
        fundingAmount: money(input.fundingAmount),
      };
      break;
    case 'postpaid':
      request = {
        ...common,
        pipeline: 'SetupPostpaid',
        callerReferenceSender: callerReferenceFor(instrumentId, 'sender'),
        callerReferenceSettlement: callerReferenceFor(instrumentId, 'settlement'),
        creditLimit: money(input.creditLimit),
        globalAmountLimit: money(input.globalAmountLimit),
      };
      break;
    case 'single-use':
      request = {
        ...common,
        pipeline: 'SingleUse',
        callerReference: callerReferenceFor(instrumentId, 'authorize'),
        transactionAmount: money(input.amount),
      };
      break;
  }
  return buildCbuiUrl(request);
}
