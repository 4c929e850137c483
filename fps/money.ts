// Money at the FPS wire: decimal strings <-> integer minor units. No floating point anywhere.

/** Integer amount in the currency's minor unit (cents for USD). Always a safe, non-negative integer. */
export type MinorUnits = number;

/** ISO 4217 exponents of the currencies this system accepts. FPS itself only ever settled USD. */
export const CURRENCY_EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  USD: 2,
  EUR: 2,
  GBP: 2,
  JPY: 0,
});

/** Largest amount accepted anywhere: 10^12 minor units (ten billion dollars) is already absurd for digital goods. */
export const MAX_MINOR_UNITS = 1_000_000_000_000;

export class MoneyError extends Error {
  override readonly name = 'MoneyError';
  constructor(
    message: string,
    readonly code: 'InvalidAmount' | 'InvalidCurrency' | 'AmountOutOfRange',
  ) {
    super(message);
  }
}

export interface Money {
  readonly amount: MinorUnits;
  readonly currency: string;
}

export function currencyExponent(currency: string): number {
  // hasOwn: 'toString', 'constructor' and friends are not currencies.
  const exponent = Object.hasOwn(CURRENCY_EXPONENTS, currency) ? CURRENCY_EXPONENTS[currency] : undefined;
  if (exponent === undefined) {
    throw new MoneyError(`unsupported currency ${JSON.stringify(currency)}`, 'InvalidCurrency');
  }
  return exponent;
}

export function isSupportedCurrency(currency: unknown): currency is string {
  return typeof currency === 'string' && Object.hasOwn(CURRENCY_EXPONENTS, currency);
}

const DECIMAL = /^(0|[1-9]\d*)(?:\.(\d+))?$/;

/**
 * Parses a decimal string ("12.50") into minor units. Rejects anything that is not a plain
 * non-negative decimal: signs, exponents, spaces, NaN, more decimals than the currency has, and
 * amounts above MAX_MINOR_UNITS. Accepts fewer decimals ("12.5", "12").
 */
export function parseDecimal(value: string, currency: string): MinorUnits {
  const exponent = currencyExponent(currency);
  if (typeof value !== 'string') throw new MoneyError('amount must be a decimal string', 'InvalidAmount');
  const match = DECIMAL.exec(value);
  if (!match) throw new MoneyError(`amount ${JSON.stringify(value)} is not a plain decimal number`, 'InvalidAmount');
  const [, whole, fraction = ''] = match;
  if (fraction.length > exponent) {
    throw new MoneyError(`amount ${value} has more than ${exponent} decimals for ${currency}`, 'InvalidAmount');
  }
  if (whole.length > 16) throw new MoneyError(`amount ${value} is too large`, 'AmountOutOfRange');
  const minor = Number(whole) * 10 ** exponent + Number(fraction.padEnd(exponent, '0') || '0');
  if (!Number.isSafeInteger(minor) || minor > MAX_MINOR_UNITS) {
    throw new MoneyError(`amount ${value} is too large`, 'AmountOutOfRange');
  }
  return minor;
}

/** Formats minor units as the FPS wire decimal ("12.50"), always with the currency's decimals. */
export function formatDecimal(amount: MinorUnits, currency: string): string {
  assertMinorUnits(amount);
  const exponent = currencyExponent(currency);
  if (exponent === 0) return String(amount);
  const digits = String(amount).padStart(exponent + 1, '0');
  return `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

/** Throws unless amount is a safe non-negative integer within MAX_MINOR_UNITS. */
export function assertMinorUnits(amount: unknown): asserts amount is MinorUnits {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    throw new MoneyError(`amount ${String(amount)} is not a non-negative integer of minor units`, 'InvalidAmount');
  }
  if (amount > MAX_MINOR_UNITS) throw new MoneyError(`amount ${amount} is too large`, 'AmountOutOfRange');
}

/** Throws unless amount is a positive amount of minor units (money operations never move zero). */
export function assertPositiveMinorUnits(amount: unknown): asserts amount is MinorUnits {
  assertMinorUnits(amount);
  if (amount === 0) throw new MoneyError('amount must be greater than zero', 'AmountOutOfRange');
}

/** "USD 12.50", the form IPNs carry in transactionAmount. */
export function formatIpnAmount(money: Money): string {
  return `${money.currency} ${formatDecimal(money.amount, money.currency)}`;
}

export function parseIpnAmount(value: string): Money {
  const match = /^([A-Z]{3}) (\S+)$/.exec(value);
  if (!match) throw new MoneyError(`transaction amount ${JSON.stringify(value)} is not "CUR 0.00"`, 'InvalidAmount');
  return { currency: match[1], amount: parseDecimal(match[2], match[1]) };
}
