// Parses the parameters FPS's Co-Branded UI appends to the merchant's return URL. No Node APIs, so
// workflow code may use it. It does not check the signature: verify first (CallbackVerifier).

export type CbuiPipeline = 'SingleUse' | 'SetupPrepaid' | 'SetupPostpaid';
export const CBUI_PIPELINES: readonly CbuiPipeline[] = ['SingleUse', 'SetupPrepaid', 'SetupPostpaid'];

/** SA/SB/SC: authorised, paying from Amazon balance, bank account or credit card. */
export type CbuiSuccessStatus = 'SA' | 'SB' | 'SC';
/** CE caller exception, NP account problem, NM not registered, PE payment method mismatch, SE system error. */
export type CbuiFailureStatus = 'CE' | 'NP' | 'NM' | 'PE' | 'SE';
export type CbuiStatus = CbuiSuccessStatus | 'A' | CbuiFailureStatus;

export interface CbuiTokensByPipeline {
  SingleUse: { tokenId: string };
  SetupPrepaid: { prepaidInstrumentId: string; fundingTokenId: string; prepaidSenderTokenId: string };
  SetupPostpaid: { creditInstrumentId: string; creditSenderTokenId: string; settlementTokenId: string };
}

export type CbuiReturn<P extends CbuiPipeline = CbuiPipeline> =
  | {
      outcome: 'authorized';
      status: CbuiSuccessStatus;
      /** SingleUse: callerReference; setup pipelines: callerReferenceSender. */
      callerReference: string;
      /** As FPS sends it, e.g. "10/2031" (payment method expiry). */
      expiry?: string;
      tokens: CbuiTokensByPipeline[P];
    }
  | { outcome: 'aborted'; status: 'A'; callerReference: string }
  | { outcome: 'failed'; status: CbuiFailureStatus; errorMessage: string; callerReference: string };

export class CbuiReturnError extends Error {
  override readonly name = 'CbuiReturnError';
  constructor(
    message: string,
    readonly code: 'MissingParameter' | 'UnknownStatus' | 'UnknownPipeline',
    readonly parameter: string,
  ) {
    super(message);
  }
}

/** Wire name of each token on the return URL -> its field in CbuiTokensByPipeline. */
const TOKEN_PARAMS: {
  [P in CbuiPipeline]: ReadonlyArray<readonly [wire: string, key: keyof CbuiTokensByPipeline[P]]>;
} = {
  SingleUse: [['tokenID', 'tokenId']],
  SetupPrepaid: [
    ['prepaidInstrumentID', 'prepaidInstrumentId'],
    ['fundingTokenID', 'fundingTokenId'],
    ['prepaidSenderTokenID', 'prepaidSenderTokenId'],
  ],
  SetupPostpaid: [
    ['creditInstrumentID', 'creditInstrumentId'],
    ['creditSenderTokenID', 'creditSenderTokenId'],
    ['settlementTokenID', 'settlementTokenId'],
  ],
};

const SUCCESS: readonly string[] = ['SA', 'SB', 'SC'];
const FAILURE: readonly string[] = ['CE', 'NP', 'NM', 'PE', 'SE'];

type ReturnParams = Readonly<Record<string, string | undefined>>;

function required(params: ReturnParams, name: string): string {
  const value = params[name];
  if (typeof value !== 'string' || value === '')
    throw new CbuiReturnError(`CBUI return lacks ${name}`, 'MissingParameter', name);
  return value;
}

/**
 * Return parameters -> typed outcome. Throws CbuiReturnError for an unknown pipeline or status,
 * or a missing status, caller reference or (on success) token. Other parameters (the merchant's
 * own, the signature fields) are ignored. A missing errorMessage on failure becomes ''.
 */
export function parseCbuiReturn<P extends CbuiPipeline>(pipeline: P, params: ReturnParams): CbuiReturn<P> {
  const tokenParams = TOKEN_PARAMS[pipeline] as ReadonlyArray<readonly [string, string]> | undefined;
  if (!tokenParams)
    throw new CbuiReturnError(`unknown pipeline ${JSON.stringify(pipeline)}`, 'UnknownPipeline', 'pipelineName');
  const status = required(params, 'status');
  // Setup pipelines return the sender reference; some clients (and FPS on aborts) send plain callerReference.
  const callerReference =
    pipeline === 'SingleUse'
      ? required(params, 'callerReference')
      : params.callerReferenceSender || required(params, 'callerReference');

  if (SUCCESS.includes(status)) {
    const tokens: Record<string, string> = {};
    for (const [wire, key] of tokenParams) tokens[key] = required(params, wire);
    const expiry = params.expiry || undefined;
    return {
      outcome: 'authorized',
      status: status as CbuiSuccessStatus,
      callerReference,
      ...(expiry !== undefined ? { expiry } : {}),
      tokens: tokens as unknown as CbuiTokensByPipeline[P],
    };
  }
  if (status === 'A') return { outcome: 'aborted', status, callerReference };
  if (FAILURE.includes(status)) {
    return {
      outcome: 'failed',
      status: status as CbuiFailureStatus,
      errorMessage: params.errorMessage ?? '',
      callerReference,
    };
  }
  throw new CbuiReturnError(`unknown CBUI status ${JSON.stringify(status)}`, 'UnknownStatus', 'status');
}
