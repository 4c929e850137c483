import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import rsaVectors from '../vectors/rsa-sha1-callbacks.json';
import {
  buildIpnParams,
  IpnError,
  IPN_OPERATIONS,
  normalizeTransactionStatus,
  parseIpn,
  type Ipn,
} from '../../fps/ipn';
import { signCallbackParams, verifyCallbackSignature } from '../../fps/callback-signature';
import { TRANSACTION_STATUSES } from '../../fps/actions';

const vectorIpn = (rsaVectors.cases as unknown as Array<{ name: string; params: Record<string, string> }>).find(
  (c) => c.name === 'ipn-pay-success',
)!.params;

describe('fps/ipn', () => {
  it('parses the signed IPN vector', () => {
    assert.deepEqual(parseIpn(vectorIpn), {
      notificationType: 'TransactionStatus',
      transactionId: '14GN1B3C2EXAMPLE',
      transactionStatus: 'Success',
      statusCode: 'Success',
      statusMessage: 'The transaction was successful and the payment instrument was charged.',
      callerReference: 'inst-42:pay:order-1001',
      operation: 'PAY',
      transactionAmount: { amount: 1250, currency: 'USD' },
      transactionDate: 1796032800,
      paymentMethod: 'CC',
    });
  });

  it('normalises every status in upper, capitalised and lower case', () => {
    for (const status of TRANSACTION_STATUSES) {
      for (const spelling of [status.toUpperCase(), status, status.toLowerCase()]) {
        assert.equal(normalizeTransactionStatus(spelling), status);
        assert.equal(
          (parseIpn({ ...vectorIpn, transactionStatus: spelling }) as { transactionStatus: string }).transactionStatus,
          status,
        );
      }
    }
  });

  it('build -> parse round trip, upper-case status on the wire, for every operation', () => {
    for (const operation of Object.values(IPN_OPERATIONS)) {
      const ipn: Ipn = {
        notificationType: 'TransactionStatus',
        transactionId: 'T-1',
        transactionStatus: 'Pending',
        statusCode: 'PendingNetworkResponse',
        statusMessage: 'waiting for the processor',
        callerReference: `inst-1:${operation.toLowerCase()}:1`,
        operation,
        transactionAmount: { amount: 5, currency: 'USD' },
        transactionDate: 1796032800,
        tokenId: 'TOK-1',
      };
      const params = buildIpnParams(ipn);
      assert.equal(params.transactionStatus, 'PENDING');
      assert.equal(params.transactionAmount, 'USD 0.05');
      assert.equal(params.transactionDate, '1796032800');
      assert.deepEqual(parseIpn(params), ipn);
    }
  });

  it('TokenCancellation round trip', () => {
    const ipn: Ipn = {
      notificationType: 'TokenCancellation',
      tokenId: 'PST-31C',
      callerReference: 'inst-43:sender',
      tokenType: 'PrepaidSender',
    };
    assert.deepEqual(parseIpn(buildIpnParams(ipn)), ipn);
    assert.deepEqual(parseIpn({ notificationType: 'TokenCancellation', tokenId: 'T' }), {
      notificationType: 'TokenCancellation',
      tokenId: 'T',
    });
  });

  it('built params signed by the sandbox verify and parse', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const target = { httpMethod: 'POST', urlEndPoint: 'http://127.0.0.1:3000/fps/ipn' };
    const signed = signCallbackParams(buildIpnParams(parseIpn(vectorIpn)), {
      ...target,
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certificateUrl: 'http://127.0.0.1:8701/certs/PKICert.pem',
    });
    assert.ok(
      verifyCallbackSignature(signed, {
        ...target,
        certificatePem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
    );
    assert.deepEqual(parseIpn(signed), parseIpn(vectorIpn));
  });

  it('statusMessage may be absent', () => {
    const { statusMessage: _omit, ...rest } = vectorIpn;
    assert.equal((parseIpn(rest) as { statusMessage: string }).statusMessage, '');
  });

  const rejects: Array<[string, Record<string, string | undefined>, IpnError['code'], string]> = [
    ['unknown notificationType', { notificationType: 'Chargeback' }, 'InvalidParameter', 'notificationType'],
    ['no notificationType', { notificationType: undefined }, 'MissingParameter', 'notificationType'],
    ['no transactionId', { transactionId: undefined }, 'MissingParameter', 'transactionId'],
    ['empty callerReference', { callerReference: '' }, 'MissingParameter', 'callerReference'],
    ['no operation', { operation: undefined }, 'MissingParameter', 'operation'],
    ['no statusCode', { statusCode: undefined }, 'MissingParameter', 'statusCode'],
    ['unknown status', { transactionStatus: 'REFUNDED' }, 'InvalidParameter', 'transactionStatus'],
    ['amount without currency', { transactionAmount: '12.50' }, 'InvalidParameter', 'transactionAmount'],
    ['amount with float syntax', { transactionAmount: 'USD 1e3' }, 'InvalidParameter', 'transactionAmount'],
    ['amount with 3 decimals', { transactionAmount: 'USD 1.005' }, 'InvalidParameter', 'transactionAmount'],
    ['amount of unknown currency', { transactionAmount: 'XXX 1.00' }, 'InvalidParameter', 'transactionAmount'],
    ['negative amount', { transactionAmount: 'USD -1.00' }, 'InvalidParameter', 'transactionAmount'],
    ['no amount', { transactionAmount: undefined }, 'MissingParameter', 'transactionAmount'],
    ['ISO date', { transactionDate: '2026-11-27T10:00:00Z' }, 'InvalidParameter', 'transactionDate'],
    ['negative date', { transactionDate: '-1' }, 'InvalidParameter', 'transactionDate'],
    ['no date', { transactionDate: undefined }, 'MissingParameter', 'transactionDate'],
  ];
  for (const [name, change, code, parameter] of rejects) {
    it(`rejects: ${name}`, () => {
      const params: Record<string, string | undefined> = { ...vectorIpn, ...change };
      assert.throws(
        () => parseIpn(params),
        (e: unknown) => e instanceof IpnError && e.code === code && e.parameter === parameter,
      );
    });
  }

  it('TokenCancellation without tokenId is rejected', () => {
    assert.throws(
      () => parseIpn({ notificationType: 'TokenCancellation' }),
      (e: unknown) => e instanceof IpnError && e.parameter === 'tokenId',
    );
  });

  it('buildIpnParams rejects a non-integer date', () => {
    const ipn = parseIpn(vectorIpn);
    assert.throws(() => buildIpnParams({ ...ipn, transactionDate: 1.5 } as Ipn), TypeError);
  });
});
