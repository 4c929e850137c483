// Parse, don't validate: request parts become typed values here, once, or a 422 problem naming
// the field at fault. Decimal amounts become integer minor units here too.
import type { z } from 'zod';
import { MoneyError, parseDecimal, type MinorUnits } from '../fps/money';
import { ProblemError, validationFailed } from './problem';

/** `value` parsed by `schema`, or a 422 naming the first field at fault (`field` names a scalar, e.g. a path parameter). */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  options: { field?: string } = {},
): z.infer<S> {
  const result = schema.safeParse(value ?? (options.field === undefined ? {} : value));
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
    const field =
      [options.field, ...issue.path.map(String), ...keys.slice(0, 1)].filter(Boolean).join('.') || undefined;
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(k)).join(', ')}`
        : issue.message;
    return { field, message };
  });
  const [first] = errors;
  throw validationFailed(first.field, first.field ? `${first.field}: ${first.message}` : first.message, { errors });
}

/**
 * A positive decimal amount in minor units. Zero, negatives, exponents, too many decimals for the
 * currency and absurd sizes are refused with the field named.
 */
export function minorUnits(value: string, currency: string, field: string): MinorUnits {
  let amount: MinorUnits;
  try {
    amount = parseDecimal(value, currency);
  } catch (e) {
    if (e instanceof MoneyError) {
      throw new ProblemError(
        422,
        e.code === 'InvalidCurrency' ? 'invalid_currency' : 'invalid_amount',
        `${field}: ${e.message}`,
        { field },
      );
    }
    throw e;
  }
  if (amount === 0) throw new ProblemError(422, 'invalid_amount', `${field}: must be greater than zero`, { field });
  return amount;
}

/** An optional amount: both amount and currency, or neither. */
export function optionalMinorUnits(body: {
  amount?: string;
  currency?: string;
}): { amount: MinorUnits; currency: string } | undefined {
  if (body.amount === undefined) {
    if (body.currency !== undefined) throw validationFailed('amount', 'amount: required when currency is given');
    return undefined;
  }
  if (body.currency === undefined) throw validationFailed('currency', 'currency: required with amount');
  return { amount: minorUnits(body.amount, body.currency, 'amount'), currency: body.currency };
}
