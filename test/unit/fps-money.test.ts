import assert from 'node:assert/strict';
import {
  assertMinorUnits,
  assertPositiveMinorUnits,
  currencyExponent,
  formatDecimal,
  formatIpnAmount,
  isSupportedCurrency,
  MAX_MINOR_UNITS,
  MoneyError,
  parseDecimal,
  parseIpnAmount,
} from '../../fps/money';

const moneyError = (code: MoneyError['code']) => (e: unknown) => e instanceof MoneyError && e.code === code;

describe('fps/money', () => {
  describe('formatDecimal', () => {
    const cases: Array<[number, string, string]> = [
      [0, 'USD', '0.00'],
      [5, 'USD', '0.05'],
      [50, 'USD', '0.50'],
      [100, 'USD', '1.00'],
      [1250, 'USD', '12.50'],
      [123456, 'USD', '1234.56'],
      [123456, 'EUR', '1234.56'],
      [0, 'JPY', '0'],
      [5, 'JPY', '5'],
      [123456, 'JPY', '123456'],
      [MAX_MINOR_UNITS, 'USD', '10000000000.00'],
    ];
    for (const [amount, currency, wire] of cases) {
      it(`${amount} ${currency} -> ${wire}`, () => assert.equal(formatDecimal(amount, currency), wire));
    }
    it('rejects non-integers, negatives, NaN, unsafe and too large amounts', () => {
      for (const bad of [1.5, -1, NaN, Infinity, 2 ** 53, MAX_MINOR_UNITS + 1])
        assert.throws(() => formatDecimal(bad, 'USD'), MoneyError, String(bad));
      assert.throws(() => formatDecimal('100' as unknown as number, 'USD'), moneyError('InvalidAmount'));
    });
  });

  describe('parseDecimal', () => {
    it('round-trips formatDecimal for every currency and many amounts', () => {
      const amounts = [0, 1, 9, 10, 99, 100, 101, 999, 1000, 1250, 123456, 99999999, MAX_MINOR_UNITS];
      for (const currency of ['USD', 'EUR', 'GBP', 'JPY']) {
        for (const amount of amounts)
          assert.equal(parseDecimal(formatDecimal(amount, currency), currency), amount, `${amount} ${currency}`);
      }
    });
    it('accepts fewer decimals than the currency has', () => {
      assert.equal(parseDecimal('12.5', 'USD'), 1250);
      assert.equal(parseDecimal('12', 'USD'), 1200);
      assert.equal(parseDecimal('0', 'USD'), 0);
      assert.equal(parseDecimal('0.1', 'USD'), 10);
      assert.equal(parseDecimal('0.01', 'USD'), 1);
    });
    it('JPY takes no decimals', () => {
      assert.equal(parseDecimal('1250', 'JPY'), 1250);
      assert.throws(() => parseDecimal('12.5', 'JPY'), moneyError('InvalidAmount'));
      assert.throws(() => parseDecimal('12.0', 'JPY'), moneyError('InvalidAmount'));
    });
    const notPlainDecimals = [
      '1e3',
      '1E3',
      '1e-2',
      '-1',
      '-0',
      '+1',
      ' 1',
      '1 ',
      '\t1',
      '1.234',
      '1.',
      '.5',
      '01',
      '00.5',
      '1,5',
      '1,000.00',
      '1_000',
      'NaN',
      'Infinity',
      '',
      '0x10',
      '0b1',
      '12.50 USD',
      'USD 12.50',
      '١٢',
      '1.2.3',
      '12.5e0',
    ];
    for (const text of notPlainDecimals) {
      it(`rejects ${JSON.stringify(text)} as InvalidAmount`, () =>
        assert.throws(() => parseDecimal(text, 'USD'), moneyError('InvalidAmount')));
    }
    it('rejects huge amounts as AmountOutOfRange', () => {
      for (const text of [
        '10000000000.01',
        '99999999999',
        '9999999999999999',
        '99999999999999999999',
        '9'.repeat(400),
      ]) {
        assert.throws(() => parseDecimal(text, 'USD'), moneyError('AmountOutOfRange'), text);
      }
      assert.equal(parseDecimal('10000000000.00', 'USD'), MAX_MINOR_UNITS);
      assert.throws(() => parseDecimal('1000000000001', 'JPY'), moneyError('AmountOutOfRange'));
    });
    it('rejects non-strings and unsupported currencies', () => {
      assert.throws(() => parseDecimal(12.5 as unknown as string, 'USD'), moneyError('InvalidAmount'));
      assert.throws(() => parseDecimal(undefined as unknown as string, 'USD'), moneyError('InvalidAmount'));
      for (const currency of ['usd', 'XXX', '', 'US', 'toString', '__proto__']) {
        assert.throws(() => parseDecimal('1.00', currency), moneyError('InvalidCurrency'), currency);
      }
    });
  });

  describe('currencies and assertions', () => {
    it('knows the exponents and nothing inherited', () => {
      assert.equal(currencyExponent('USD'), 2);
      assert.equal(currencyExponent('JPY'), 0);
      assert.ok(isSupportedCurrency('EUR'));
      assert.ok(!isSupportedCurrency('constructor'));
      assert.ok(!isSupportedCurrency(1));
    });
    it('assertMinorUnits / assertPositiveMinorUnits', () => {
      assertMinorUnits(0);
      assertPositiveMinorUnits(1);
      assert.throws(() => assertPositiveMinorUnits(0), moneyError('AmountOutOfRange'));
      assert.throws(() => assertMinorUnits(-1), moneyError('InvalidAmount'));
      assert.throws(() => assertMinorUnits(0.1), moneyError('InvalidAmount'));
      assert.throws(() => assertMinorUnits(MAX_MINOR_UNITS + 1), moneyError('AmountOutOfRange'));
    });
  });

  describe('IPN amounts ("USD 12.50")', () => {
    it('round-trips', () => {
      for (const money of [
        { amount: 1250, currency: 'USD' },
        { amount: 0, currency: 'USD' },
        { amount: 777, currency: 'JPY' },
      ]) {
        assert.deepEqual(parseIpnAmount(formatIpnAmount(money)), money);
      }
      assert.equal(formatIpnAmount({ amount: 5, currency: 'USD' }), 'USD 0.05');
    });
    it('rejects other shapes', () => {
      for (const text of [
        '12.50',
        'USD12.50',
        'USD  12.50',
        'usd 12.50',
        '12.50 USD',
        'USD 12.505',
        'USD 1e3',
        'USD -1',
        '',
      ]) {
        assert.throws(() => parseIpnAmount(text), MoneyError, text);
      }
    });
  });
});
