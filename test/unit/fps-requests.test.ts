import assert from 'node:assert/strict';
import { FPS_ACTIONS, type FpsAction, type FpsRequest } from '../../fps/actions';
import { FpsError } from '../../fps/errors';
import { ACTION_FIELDS, decodeRequest, encodeRequest } from '../../fps/requests';
import { toQueryString } from '../../fps/signature';
import { SAMPLE_REQUESTS } from './fps-samples';

/** Through the wire for real: encode, form-encode, parse the form, decode. */
function overTheWire<A extends FpsAction>(action: A, request: FpsRequest<A>): FpsRequest<A> {
  const body = toQueryString({
    ...encodeRequest(action, request),
    Action: action,
    Signature: 'x',
    AWSAccessKeyId: 'AK',
  });
  return decodeRequest(action, Object.fromEntries(new URLSearchParams(body)));
}

const fpsError = (code: string) => (e: unknown) =>
  e instanceof FpsError && e.code === code && e.httpStatus === 400 && !e.retryable;

describe('fps/requests', () => {
  describe('encode -> decode round trip', () => {
    for (const action of FPS_ACTIONS) {
      it(action, () => {
        const request = SAMPLE_REQUESTS[action];
        assert.deepEqual(decodeRequest(action, encodeRequest(action, request)), request);
        assert.deepEqual(overTheWire(action, request), request);
      });
    }

    it('every sample sets every field the table knows (optional ones included)', () => {
      for (const action of FPS_ACTIONS) {
        const keys = Object.keys(SAMPLE_REQUESTS[action]);
        const fields = ACTION_FIELDS[action]
          .map((f) => f.key)
          .filter((k) => !(action === 'GetTokenByCaller' && k === 'tokenId'));
        assert.deepEqual(keys.sort(), fields.sort(), action);
      }
    });

    it('optional fields may be left out', () => {
      const settle = { reserveTransactionId: 'R-1' };
      assert.deepEqual(overTheWire('Settle', settle), settle);
      const refund = { transactionId: 'T-1', callerReference: 'inst-1:refund:1' };
      assert.deepEqual(overTheWire('Refund', refund), refund);
      assert.deepEqual(overTheWire('GetTokenByCaller', { tokenId: 'TOK-1' }), { tokenId: 'TOK-1' });
    });

    it('wire names and amount format', () => {
      assert.deepEqual(
        encodeRequest('Pay', {
          senderTokenId: 'S',
          transactionAmount: { amount: 5, currency: 'USD' },
          callerReference: 'c',
        }),
        {
          SenderTokenId: 'S',
          'TransactionAmount.Value': '0.05',
          'TransactionAmount.CurrencyCode': 'USD',
          CallerReference: 'c',
        },
      );
      assert.deepEqual(Object.keys(encodeRequest('SettleDebt', SAMPLE_REQUESTS.SettleDebt)).sort(), [
        'CallerReference',
        'CreditInstrumentId',
        'SenderTokenId',
        'SettlementAmount.CurrencyCode',
        'SettlementAmount.Value',
      ]);
      assert.ok('AdjustmentAmount.Value' in encodeRequest('WriteOffDebt', SAMPLE_REQUESTS.WriteOffDebt));
      assert.ok('FundingAmount.Value' in encodeRequest('FundPrepaid', SAMPLE_REQUESTS.FundPrepaid));
    });

    it('encode refuses a missing required field', () => {
      assert.throws(
        () => encodeRequest('Pay', { senderTokenId: 'S', callerReference: 'c' } as unknown as FpsRequest<'Pay'>),
        TypeError,
      );
    });
  });

  describe('decode errors', () => {
    const pay = encodeRequest('Pay', SAMPLE_REQUESTS.Pay);
    const without = (name: string) => Object.fromEntries(Object.entries(pay).filter(([k]) => k !== name));

    for (const name of Object.keys(pay).filter((k) => k !== 'SenderDescription')) {
      it(`missing ${name} -> InvalidParams`, () =>
        assert.throws(() => decodeRequest('Pay', without(name)), fpsError('InvalidParams')));
    }
    it('every action without any parameter -> InvalidParams (except GetOutstandingDebtBalance)', () => {
      for (const action of FPS_ACTIONS.filter((a) => a !== 'GetOutstandingDebtBalance')) {
        assert.throws(() => decodeRequest(action, {}), fpsError('InvalidParams'), action);
      }
      assert.deepEqual(decodeRequest('GetOutstandingDebtBalance', {}), {});
    });
    it('empty required string -> InvalidParams', () => {
      assert.throws(() => decodeRequest('Pay', { ...pay, SenderTokenId: '' }), fpsError('InvalidParams'));
    });
    for (const zero of ['0', '0.00', '0.0']) {
      it(`zero amount ${zero} -> AmountOutOfRange`, () => {
        assert.throws(
          () => decodeRequest('Pay', { ...pay, 'TransactionAmount.Value': zero }),
          fpsError('AmountOutOfRange'),
        );
      });
    }
    it('zero optional amounts are refused too', () => {
      assert.throws(
        () =>
          decodeRequest('Settle', {
            ReserveTransactionId: 'R',
            'TransactionAmount.Value': '0',
            'TransactionAmount.CurrencyCode': 'USD',
          }),
        fpsError('AmountOutOfRange'),
      );
    });
    it('huge amount -> AmountOutOfRange', () => {
      assert.throws(
        () => decodeRequest('Pay', { ...pay, 'TransactionAmount.Value': '99999999999999999999' }),
        fpsError('AmountOutOfRange'),
      );
    });
    for (const malformed of ['-1.00', '1e3', '12.5.0', 'abc', '12.505', ' 12.50', '']) {
      it(`malformed amount ${JSON.stringify(malformed)} -> InvalidParams`, () => {
        assert.throws(
          () => decodeRequest('Pay', { ...pay, 'TransactionAmount.Value': malformed }),
          fpsError('InvalidParams'),
        );
      });
    }
    it('amount without currency, or with an unknown one -> InvalidParams', () => {
      assert.throws(() => decodeRequest('Pay', without('TransactionAmount.CurrencyCode')), fpsError('InvalidParams'));
      assert.throws(() => decodeRequest('Pay', without('TransactionAmount.Value')), fpsError('InvalidParams'));
      assert.throws(
        () => decodeRequest('Pay', { ...pay, 'TransactionAmount.CurrencyCode': 'XXX' }),
        fpsError('InvalidParams'),
      );
    });
    it('CallerReference of 128 characters is fine, 129 -> InvalidParams', () => {
      assert.equal(decodeRequest('Pay', { ...pay, CallerReference: 'x'.repeat(128) }).callerReference.length, 128);
      assert.throws(
        () => decodeRequest('Pay', { ...pay, CallerReference: 'x'.repeat(129) }),
        fpsError('InvalidParams'),
      );
      assert.throws(
        () => decodeRequest('Refund', { TransactionId: 'T', CallerReference: 'y'.repeat(200) }),
        fpsError('InvalidParams'),
      );
    });
    it('GetTokenByCaller needs exactly one of CallerReference and TokenId', () => {
      assert.throws(() => decodeRequest('GetTokenByCaller', {}), fpsError('InvalidParams'));
      assert.throws(
        () => decodeRequest('GetTokenByCaller', { CallerReference: 'c', TokenId: 't' }),
        fpsError('InvalidParams'),
      );
    });
  });
});
