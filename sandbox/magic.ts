// Magic amounts: the last two digits of an amount's minor units (the cents) choose the outcome of
// a sandbox money action, so tests and developers can provoke every FPS outcome on purpose.

/** What the simulated payment processor does with a Pay, Reserve, FundPrepaid or SettleDebt. */
export type MagicOutcome = 'success' | 'pendingThenSuccess' | 'pendingThenFailure' | 'denied' | 'failure';

export interface MagicAmount {
  cents: string;
  outcome: MagicOutcome;
  effect: string;
}

/** The table README.md shows; every other amount succeeds synchronously. */
export const MAGIC_AMOUNTS: readonly MagicAmount[] = [
  {
    cents: '.13',
    outcome: 'pendingThenSuccess',
    effect: 'TransactionStatus Pending; Success (money moves, IPN SUCCESS) after SANDBOX_PENDING_DELAY_MS',
  },
  {
    cents: '.14',
    outcome: 'pendingThenFailure',
    effect: 'TransactionStatus Pending; Failure (no money moves, IPN FAILURE) after SANDBOX_PENDING_DELAY_MS',
  },
  { cents: '.51', outcome: 'denied', effect: 'error TransactionDenied (HTTP 400); no transaction is created' },
  {
    cents: '.52',
    outcome: 'failure',
    effect: 'transaction created with TransactionStatus Failure, StatusCode PaymentMethodDeclined; no money moves',
  },
];

export function magicOutcome(amountMinorUnits: number): MagicOutcome {
  const cents = amountMinorUnits % 100;
  return MAGIC_AMOUNTS.find((m) => Number(m.cents.slice(1)) === cents)?.outcome ?? 'success';
}
