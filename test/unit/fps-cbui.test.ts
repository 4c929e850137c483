import assert from 'node:assert/strict';
import vectors from '../vectors/signature-v2.json';
import rsaVectors from '../vectors/rsa-sha1-callbacks.json';
import {
  buildCbuiUrl,
  cbuiParams,
  CbuiReturnError,
  parseCbuiReturn,
  type CbuiRequest,
  type CbuiSingleUse,
} from '../../fps/cbui';
import { parseDecimal } from '../../fps/money';
import { verifyCbuiSignature } from '../../fps/signature';

type Vector = {
  name: string;
  host: string;
  path: string;
  secret: string;
  params: Record<string, string>;
  signature: string;
  url?: string;
};
const cbuiVectors = (vectors.cases as unknown as Vector[]).filter((v) => v.path.startsWith('/cobranded-ui'));
const usd = (value: string) => ({ amount: parseDecimal(value, 'USD'), currency: 'USD' });

/** The builder's input that the vector's parameters describe. */
function requestFromVector(v: Vector): CbuiRequest {
  const p = v.params;
  const common = {
    endpoint: `https://${v.host}${v.path}`,
    callerKey: p.callerKey,
    secretKey: v.secret,
    returnUrl: p.returnURL,
    ...(p.paymentReason !== undefined ? { paymentReason: p.paymentReason } : {}),
  };
  switch (p.pipelineName) {
    case 'SingleUse':
      return {
        ...common,
        pipeline: 'SingleUse',
        callerReference: p.callerReference,
        transactionAmount: usd(p.transactionAmount),
      };
    case 'SetupPrepaid':
      return {
        ...common,
        pipeline: 'SetupPrepaid',
        callerReferenceSender: p.callerReferenceSender,
        callerReferenceFunding: p.callerReferenceFunding,
        fundingAmount: usd(p.fundingAmount),
      };
    case 'SetupPostpaid':
      return {
        ...common,
        pipeline: 'SetupPostpaid',
        callerReferenceSender: p.callerReferenceSender,
        callerReferenceSettlement: p.callerReferenceSettlement,
        creditLimit: usd(p.creditLimit),
        globalAmountLimit: usd(p.globalAmountLimit),
      };
    default:
      throw new Error(`vector with unknown pipeline ${p.pipelineName}`);
  }
}

describe('fps/cbui: buildCbuiUrl', () => {
  it('the vectors include all three pipelines', () => {
    assert.deepEqual(cbuiVectors.map((v) => v.params.pipelineName).sort(), [
      'SetupPostpaid',
      'SetupPrepaid',
      'SingleUse',
    ]);
  });

  for (const v of cbuiVectors) {
    it(`${v.name}: exactly the vector's URL and signature`, () => {
      const url = buildCbuiUrl(requestFromVector(v));
      assert.equal(new URL(url).searchParams.get('signature'), v.signature);
      assert.equal(url, v.url);
    });
    it(`${v.name}: exactly the vector's parameters`, () => {
      const { signatureMethod, signatureVersion, ...unsigned } = v.params;
      assert.deepEqual(cbuiParams(requestFromVector(v)), unsigned);
      assert.deepEqual([signatureMethod, signatureVersion], ['HmacSHA256', '2']);
    });
  }

  const fromVector = requestFromVector(cbuiVectors.find((v) => v.params.pipelineName === 'SingleUse')!);
  assert.equal(fromVector.pipeline, 'SingleUse');
  const singleUse = fromVector as CbuiSingleUse;

  it('signs for a local sandbox host with its port, verifiable by the server side', () => {
    const url = new URL(buildCbuiUrl({ ...singleUse, endpoint: 'http://127.0.0.1:8701/cobranded-ui/actions/start' }));
    const params = Object.fromEntries(url.searchParams);
    assert.ok(verifyCbuiSignature(params, { host: url.host, path: url.pathname }, singleUse.secretKey));
    assert.ok(!verifyCbuiSignature(params, { host: '127.0.0.1', path: url.pathname }, singleUse.secretKey));
  });

  it('currencyCode: sent when given, required to match the amounts, sent for non-USD', () => {
    assert.equal(cbuiParams({ ...singleUse, currencyCode: 'USD' }).currencyCode, 'USD');
    assert.throws(() => cbuiParams({ ...singleUse, currencyCode: 'EUR' }), TypeError);
    const eur = cbuiParams({ ...singleUse, transactionAmount: { amount: 1250, currency: 'EUR' } });
    assert.equal(eur.currencyCode, 'EUR');
    assert.equal(eur.transactionAmount, '12.50');
    const postpaid = requestFromVector(cbuiVectors.find((v) => v.params.pipelineName === 'SetupPostpaid')!);
    assert.throws(
      () => cbuiParams({ ...postpaid, globalAmountLimit: { amount: 100, currency: 'EUR' } } as CbuiRequest),
      TypeError,
    );
  });

  it('rejects zero, fractional and unsupported amounts, bad references and URLs', () => {
    assert.throws(() => cbuiParams({ ...singleUse, transactionAmount: usd('0') }));
    assert.throws(() => cbuiParams({ ...singleUse, transactionAmount: { amount: 1.5, currency: 'USD' } }));
    assert.throws(() => cbuiParams({ ...singleUse, transactionAmount: { amount: 100, currency: 'XXX' } }));
    assert.throws(() => cbuiParams({ ...singleUse, callerReference: '' }), TypeError);
    assert.throws(() => cbuiParams({ ...singleUse, callerReference: 'x'.repeat(129) }), TypeError);
    assert.throws(() => cbuiParams({ ...singleUse, returnUrl: '/relative' }), TypeError);
    assert.throws(() => buildCbuiUrl({ ...singleUse, endpoint: 'https://a.example/start?x=1' }), TypeError);
    assert.throws(() => cbuiParams({ ...singleUse, pipeline: 'Recurring' } as unknown as CbuiRequest), TypeError);
  });
});

describe('fps/cbui: parseCbuiReturn', () => {
  const rsaCase = (name: string) =>
    (rsaVectors.cases as unknown as Array<{ name: string; params: Record<string, string> }>).find(
      (c) => c.name === name,
    )!.params;

  it('SingleUse success from the signed vector', () => {
    assert.deepEqual(parseCbuiReturn('SingleUse', rsaCase('return-singleuse')), {
      outcome: 'authorized',
      status: 'SC',
      callerReference: 'inst-42:authorize',
      expiry: '10/2031',
      tokens: { tokenId: 'P7GC7HLKBGN2ZSXN1MSEZ6R3U4QHDDNQHKJ5A7V4LJBI9MMFUZU5DS8SULSIZ3UB' },
    });
  });

  it('SetupPrepaid success from the signed vector (callerReferenceSender)', () => {
    assert.deepEqual(parseCbuiReturn('SetupPrepaid', rsaCase('return-setupprepaid')), {
      outcome: 'authorized',
      status: 'SA',
      callerReference: 'inst-43:sender',
      expiry: '10/2031',
      tokens: { prepaidInstrumentId: 'PI-9X2', fundingTokenId: 'FT-77A', prepaidSenderTokenId: 'PST-31C' },
    });
  });

  it('SetupPostpaid success, plain callerReference accepted, no expiry', () => {
    const result = parseCbuiReturn('SetupPostpaid', {
      status: 'SB',
      callerReference: 'inst-44:sender',
      creditInstrumentID: 'CI-1',
      creditSenderTokenID: 'CST-1',
      settlementTokenID: 'STL-1',
      instrument: 'inst-44',
    });
    assert.deepEqual(result, {
      outcome: 'authorized',
      status: 'SB',
      callerReference: 'inst-44:sender',
      tokens: { creditInstrumentId: 'CI-1', creditSenderTokenId: 'CST-1', settlementTokenId: 'STL-1' },
    });
  });

  it('aborted and every failure status', () => {
    assert.deepEqual(parseCbuiReturn('SingleUse', { status: 'A', callerReference: 'r' }), {
      outcome: 'aborted',
      status: 'A',
      callerReference: 'r',
    });
    for (const status of ['CE', 'NP', 'NM', 'PE', 'SE'] as const) {
      assert.deepEqual(
        parseCbuiReturn('SetupPrepaid', { status, callerReferenceSender: 's', errorMessage: 'Caller input error' }),
        {
          outcome: 'failed',
          status,
          errorMessage: 'Caller input error',
          callerReference: 's',
        },
      );
    }
    assert.equal(
      (parseCbuiReturn('SingleUse', { status: 'SE', callerReference: 'r' }) as { errorMessage: string }).errorMessage,
      '',
    );
  });

  const rejects: Array<[string, Parameters<typeof parseCbuiReturn>, string, string]> = [
    ['unknown status', ['SingleUse', { status: 'SX', callerReference: 'r' }], 'UnknownStatus', 'status'],
    [
      'lower-case status',
      ['SingleUse', { status: 'sc', callerReference: 'r', tokenID: 't' }],
      'UnknownStatus',
      'status',
    ],
    ['missing status', ['SingleUse', { callerReference: 'r', tokenID: 't' }], 'MissingParameter', 'status'],
    ['missing tokenID', ['SingleUse', { status: 'SC', callerReference: 'r' }], 'MissingParameter', 'tokenID'],
    [
      'SingleUse without callerReference',
      ['SingleUse', { status: 'SC', callerReferenceSender: 'r', tokenID: 't' }],
      'MissingParameter',
      'callerReference',
    ],
    [
      'missing prepaid funding token',
      [
        'SetupPrepaid',
        { status: 'SA', callerReferenceSender: 'r', prepaidInstrumentID: 'p', prepaidSenderTokenID: 's' },
      ],
      'MissingParameter',
      'fundingTokenID',
    ],
    [
      'empty settlement token',
      [
        'SetupPostpaid',
        {
          status: 'SA',
          callerReferenceSender: 'r',
          creditInstrumentID: 'c',
          creditSenderTokenID: 's',
          settlementTokenID: '',
        },
      ],
      'MissingParameter',
      'settlementTokenID',
    ],
    ['aborted without reference', ['SetupPostpaid', { status: 'A' }], 'MissingParameter', 'callerReference'],
    [
      'unknown pipeline',
      ['Recurring' as 'SingleUse', { status: 'A', callerReference: 'r' }],
      'UnknownPipeline',
      'pipelineName',
    ],
  ];
  for (const [name, args, code, parameter] of rejects) {
    it(`rejects: ${name}`, () => {
      assert.throws(
        () => parseCbuiReturn(...args),
        (e: unknown) => e instanceof CbuiReturnError && e.code === code && e.parameter === parameter,
      );
    });
  }
});
