// Pure checks of a workflow's input and of Update requests: each throws the failure the caller
// sees (InvalidInput for a start, an UpdateRejection for a request). No workflow state here.
import { ApplicationFailure } from '@temporalio/workflow';
import { isSupportedCurrency, MAX_MINOR_UNITS } from '../../fps/money';
import {
  INSTRUMENT_TYPES,
  UpdateRejection,
  type BalanceRulesChange,
  type InstrumentInput,
  type UpdateRejectionType,
} from '../messages';
import { OWN_ID_PREFIX } from './refs';

const MAX_ID_LENGTH = 200;
export const rejection = (type: UpdateRejectionType, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });
export function requireId(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw rejection(
      UpdateRejection.InvalidRequest,
      `${name} must be a non-empty string of at most ${MAX_ID_LENGTH} characters`,
    );
  }
  if (value.startsWith(OWN_ID_PREFIX))
    throw rejection(
      UpdateRejection.InvalidRequest,
      `${name} must not start with "${OWN_ID_PREFIX}": those ids name the instrument's own operations`,
    );
}

export function requireAmount(value: unknown, name = 'amount'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_MINOR_UNITS) {
    throw rejection(
      UpdateRejection.InvalidAmount,
      `${name} must be a positive integer of minor units (at most ${MAX_MINOR_UNITS}), got ${String(value)}`,
    );
  }
}

export function requireRequest(value: unknown): void {
  if (typeof value !== 'object' || value === null)
    throw rejection(UpdateRejection.InvalidRequest, 'the request must be an object');
}

export function validateInput(input: InstrumentInput): void {
  const fail = (message: string) => {
    throw ApplicationFailure.nonRetryable(`invalid instrument input: ${message}`, 'InvalidInput');
  };
  if (typeof input !== 'object' || input === null) fail('not an object');
  if (typeof input.instrumentId !== 'string' || !input.instrumentId) fail('instrumentId is required');
  if (typeof input.customerId !== 'string' || !input.customerId) fail('customerId is required');
  if (!INSTRUMENT_TYPES.includes(input.type)) fail(`type must be one of ${INSTRUMENT_TYPES.join(', ')}`);
  if (!isSupportedCurrency(input.currency)) fail(`unsupported currency ${String(input.currency)}`);
  const positive = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= MAX_MINOR_UNITS;
  if (input.type === 'prepaid' && !positive(input.fundingAmount)) fail('prepaid needs a positive fundingAmount');
  if (input.type === 'postpaid' && !positive(input.creditLimit)) fail('postpaid needs a positive creditLimit');
  if (input.type === 'postpaid' && input.globalAmountLimit !== undefined && !positive(input.globalAmountLimit))
    fail('globalAmountLimit must be positive');
  if (input.type === 'single-use' && !positive(input.amount)) fail('single-use needs a positive amount');
  if (input.singleUseMode !== undefined && input.singleUseMode !== 'pay' && input.singleUseMode !== 'reserve')
    fail('singleUseMode is pay or reserve');
  if (input.balanceRules !== undefined) {
    if (input.type !== 'prepaid') fail('balanceRules apply to prepaid instruments only');
    const problem = balanceRulesProblem(input.balanceRules);
    if (problem) fail(problem);
  }
}

/** Why a balance rules change is malformed, or undefined (shape only: the machine's guard decides the rest). */
export function balanceRulesProblem(change: unknown): string | undefined {
  if (typeof change !== 'object' || change === null) return 'balance rules must be an object';
  const { lowBalanceThreshold, autoTopUp } = change as BalanceRulesChange;
  const positive = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= MAX_MINOR_UNITS;
  if (lowBalanceThreshold !== undefined && lowBalanceThreshold !== null && !positive(lowBalanceThreshold))
    return 'lowBalanceThreshold must be a positive integer of minor units or null';
  if (autoTopUp !== undefined && autoTopUp !== null) {
    if (typeof autoTopUp !== 'object') return 'autoTopUp must be an object or null';
    if (!positive(autoTopUp.below)) return 'autoTopUp.below must be a positive integer of minor units';
    if (!positive(autoTopUp.amount)) return 'autoTopUp.amount must be a positive integer of minor units';
  }
  return undefined;
}
