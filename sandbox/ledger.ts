// The sandbox's books: tokens, prepaid and credit instruments, transactions, in one SQLite file.
// Every FPS action that moves money runs in ONE database transaction, amounts are integer minor
// units, and the rules (limits, idempotency, states) follow shared/fps-api.md; see README.md.
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type {
  CancelRequest,
  CancelTokenRequest,
  DebtBalanceResult,
  FpsAction,
  FundPrepaidRequest,
  GetTokenByCallerRequest,
  OutstandingDebtResult,
  PayRequest,
  PrepaidBalanceResult,
  RefundRequest,
  SettleDebtRequest,
  SettleRequest,
  TokenResult,
  TransactionResult,
  TransactionStatus,
  TransactionStatusResult,
  WriteOffDebtRequest,
} from '../fps/actions';
import { FpsError, httpStatusFor, type FpsErrorCode } from '../fps/errors';
import { formatIpnAmount, type Money } from '../fps/money';
import { newInstrumentId, newTokenId, newTransactionId } from './ids';
import { magicOutcome } from './magic';

/** FPS returns the original transaction for a repeated CallerReference within this window. */
export const IDEMPOTENCY_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

export type SandboxTokenType = 'SingleUse' | 'PrepaidSender' | 'PrepaidFunding' | 'CreditSender' | 'SettlementToken';
export type Operation = 'PAY' | 'RESERVE' | 'REFUND' | 'FUND_PREPAID' | 'SETTLE_DEBT' | 'WRITE_OFF_DEBT';
export type InstrumentKind = 'prepaid' | 'credit';
export type Pipeline = 'SingleUse' | 'SetupPrepaid' | 'SetupPostpaid';

export interface TokenRow {
  id: string;
  caller_key: string;
  type: SandboxTokenType;
  status: 'Active' | 'Inactive';
  caller_reference: string;
  pipeline: Pipeline;
  currency: string;
  /** SingleUse: the amount the buyer authorized. */
  amount_limit: number | null;
  instrument_id: string | null;
  date_installed: number;
  cancelled_at: number | null;
  cancel_reason: string | null;
}

export interface PrepaidRow {
  id: string;
  caller_key: string;
  currency: string;
  /** Money on the instrument now (settled; pending payments not yet deducted). */
  balance: number;
  funded_total: number;
  spent_total: number;
  /** FundPrepaid may not raise balance (+ pending funding) above this: the SetupPrepaid fundingAmount. */
  funding_limit: number;
  sender_token_id: string;
  funding_token_id: string;
  status: 'Active' | 'Inactive';
  created_at: number;
  expires_at: number | null;
}

export interface CreditRow {
  id: string;
  caller_key: string;
  currency: string;
  debt: number;
  credit_limit: number;
  global_amount_limit: number;
  charged_total: number;
  settled_total: number;
  written_off_total: number;
  sender_token_id: string;
  settlement_token_id: string;
  status: 'Active' | 'Inactive';
  created_at: number;
  expires_at: number | null;
}

export interface TransactionRow {
  id: string;
  caller_key: string;
  operation: Operation;
  action: FpsAction;
  caller_reference: string;
  params_hash: string;
  amount: number;
  currency: string;
  status: TransactionStatus;
  status_code: string;
  status_message: string;
  token_id: string | null;
  instrument_id: string | null;
  instrument_kind: InstrumentKind | null;
  parent_id: string | null;
  /** What actually moved (Settle may capture less than was reserved). */
  settled_amount: number;
  refunded_amount: number;
  reserved_amount: number;
  /** Pending only: the status it will reach, and when (epoch ms). */
  pending_outcome: 'Success' | 'Failure' | null;
  resolve_at: number | null;
  created_at: number;
  updated_at: number;
}

/** A status change announced after the synchronous answer: the IPN sender turns it into a notification. */
export type LedgerEvent =
  | { kind: 'TransactionStatus'; transaction: TransactionRow; operation: Operation | 'SETTLE' }
  | { kind: 'TokenCancellation'; token: TokenRow };

export interface LedgerOptions {
  file: string;
  pendingDelayMs: number;
  /** Called inside the database transaction that made the change, so the notification is logged atomically. */
  onEvent?: (event: LedgerEvent) => void;
  now?: () => number;
}

export interface Outcome<T> {
  result: T;
  /** The answer repeats an earlier request with the same CallerReference; nothing moved. */
  replayed: boolean;
}

export interface CbuiAuthorization {
  pipeline: Pipeline;
  callerKey: string;
  /** callerReference (SingleUse) or callerReferenceSender. */
  callerReference: string;
  currency: string;
  singleUse?: { amount: number };
  prepaid?: { callerReferenceFunding: string; fundingAmount: number };
  postpaid?: { callerReferenceSettlement: string; creditLimit: number; globalAmountLimit: number };
  /** Epoch ms after which the instrument refuses use (CBUI validityExpiry). */
  expiresAt?: number;
}

/** Return-URL parameters of an approved pipeline (without status and signature). */
export type CbuiResult = Record<string, string>;

const STATUS_TEXT: Record<TransactionStatus, { code: string; message: string }> = {
  Success: { code: 'Success', message: 'The transaction was successful and the payment instrument was charged.' },
  Reserved: { code: 'Success', message: 'The amount was reserved on the payment instrument.' },
  Pending: {
    code: 'PendingNetworkResponse',
    message: 'The transaction is awaiting a response from the payment processor.',
  },
  Failure: { code: 'PaymentMethodDeclined', message: 'The payment method was declined by the processor.' },
  Cancelled: { code: 'Cancelled', message: 'The transaction was cancelled.' },
};

export function fpsError(code: FpsErrorCode | string, message: string): FpsError {
  return new FpsError(code, message, undefined, httpStatusFor(code));
}

/** An FpsError's own message, without the "<code>: " prefix FpsError puts in front of it. */
export function fpsErrorMessage(e: FpsError): string {
  return e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
}

/** Canonical hash of a typed request: key order and amount spelling ("12.5" vs "12.50") do not matter. */
export function requestHash(action: FpsAction | Pipeline, request: unknown): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  return createHash('sha256')
    .update(JSON.stringify([action, canonical(request)]))
    .digest('hex');
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  caller_key TEXT NOT NULL,
  type TEXT NOT NULL,
  status TEXT NOT NULL,
  caller_reference TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount_limit INTEGER,
  instrument_id TEXT,
  date_installed INTEGER NOT NULL,
  cancelled_at INTEGER,
  cancel_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_caller_reference ON tokens (caller_key, caller_reference);
CREATE INDEX IF NOT EXISTS tokens_by_instrument ON tokens (instrument_id);

CREATE TABLE IF NOT EXISTS prepaid_instruments (
  id TEXT PRIMARY KEY,
  caller_key TEXT NOT NULL,
  currency TEXT NOT NULL,
  balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
  funded_total INTEGER NOT NULL DEFAULT 0,
  spent_total INTEGER NOT NULL DEFAULT 0,
  funding_limit INTEGER NOT NULL,
  sender_token_id TEXT NOT NULL,
  funding_token_id TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);

CREATE TABLE IF NOT EXISTS credit_instruments (
  id TEXT PRIMARY KEY,
  caller_key TEXT NOT NULL,
  currency TEXT NOT NULL,
  debt INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0),
  credit_limit INTEGER NOT NULL,
  global_amount_limit INTEGER NOT NULL,
  charged_total INTEGER NOT NULL DEFAULT 0,
  settled_total INTEGER NOT NULL DEFAULT 0,
  written_off_total INTEGER NOT NULL DEFAULT 0,
  sender_token_id TEXT NOT NULL,
  settlement_token_id TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS credit_by_caller ON credit_instruments (caller_key);

CREATE TABLE IF NOT EXISTS transactions (
  id TEXT PRIMARY KEY,
  caller_key TEXT NOT NULL,
  operation TEXT NOT NULL,
  action TEXT NOT NULL,
  caller_reference TEXT NOT NULL,
  params_hash TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  currency TEXT NOT NULL,
  status TEXT NOT NULL,
  status_code TEXT NOT NULL,
  status_message TEXT NOT NULL,
  token_id TEXT,
  instrument_id TEXT,
  instrument_kind TEXT,
  parent_id TEXT,
  settled_amount INTEGER NOT NULL DEFAULT 0,
  refunded_amount INTEGER NOT NULL DEFAULT 0,
  reserved_amount INTEGER NOT NULL DEFAULT 0,
  pending_outcome TEXT,
  resolve_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tx_by_caller_reference ON transactions (caller_key, caller_reference, created_at);
CREATE INDEX IF NOT EXISTS tx_by_instrument ON transactions (instrument_id, status, operation);
CREATE INDEX IF NOT EXISTS tx_by_token ON transactions (token_id, operation, status);
CREATE INDEX IF NOT EXISTS tx_pending ON transactions (resolve_at) WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS tx_by_parent ON transactions (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS cbui_authorizations (
  caller_key TEXT NOT NULL,
  caller_reference TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  params_hash TEXT NOT NULL,
  result_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (caller_key, caller_reference)
);

CREATE TABLE IF NOT EXISTS cbui_requests (
  id TEXT PRIMARY KEY,
  params_json TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`;

export class Ledger {
  readonly db: Database.Database;
  readonly #now: () => number;
  readonly #pendingDelayMs: number;
  readonly #onEvent: (event: LedgerEvent) => void;
  readonly #stmt;

  constructor(options: LedgerOptions) {
    this.db = new Database(options.file);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a committed transaction survives a process crash; only an OS crash can lose the last ones.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.#now = options.now ?? Date.now;
    this.#pendingDelayMs = options.pendingDelayMs;
    this.#onEvent = options.onEvent ?? (() => {});
    const db = this.db;
    this.#stmt = {
      token: db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE id = ?'),
      tokenByRef: db.prepare<[string, string], TokenRow>(
        'SELECT * FROM tokens WHERE caller_key = ? AND caller_reference = ?',
      ),
      insertToken: db.prepare(
        `INSERT INTO tokens (id, caller_key, type, status, caller_reference, pipeline, currency, amount_limit, instrument_id, date_installed)
         VALUES (@id, @caller_key, @type, 'Active', @caller_reference, @pipeline, @currency, @amount_limit, @instrument_id, @date_installed)`,
      ),
      cancelToken: db.prepare(
        "UPDATE tokens SET status = 'Inactive', cancelled_at = ?, cancel_reason = ? WHERE id = ?",
      ),
      tokenUsed: db.prepare<[string], { id: string }>(
        "SELECT id FROM transactions WHERE token_id = ? AND operation IN ('PAY', 'RESERVE') AND status != 'Failure' LIMIT 1",
      ),
      prepaid: db.prepare<[string], PrepaidRow>('SELECT * FROM prepaid_instruments WHERE id = ?'),
      deactivatePrepaid: db.prepare("UPDATE prepaid_instruments SET status = 'Inactive' WHERE id = ?"),
      deactivateCredit: db.prepare("UPDATE credit_instruments SET status = 'Inactive' WHERE id = ?"),
      credit: db.prepare<[string], CreditRow>('SELECT * FROM credit_instruments WHERE id = ?'),
      insertPrepaid: db.prepare(
        `INSERT INTO prepaid_instruments (id, caller_key, currency, funding_limit, sender_token_id, funding_token_id, status, created_at, expires_at)
         VALUES (@id, @caller_key, @currency, @funding_limit, @sender_token_id, @funding_token_id, 'Active', @created_at, @expires_at)`,
      ),
      insertCredit: db.prepare(
        `INSERT INTO credit_instruments (id, caller_key, currency, credit_limit, global_amount_limit, sender_token_id, settlement_token_id, status, created_at, expires_at)
         VALUES (@id, @caller_key, @currency, @credit_limit, @global_amount_limit, @sender_token_id, @settlement_token_id, 'Active', @created_at, @expires_at)`,
      ),
      prepaidMove: db.prepare(
        'UPDATE prepaid_instruments SET balance = balance + @balance, funded_total = funded_total + @funded, spent_total = spent_total + @spent WHERE id = @id',
      ),
      creditMove: db.prepare(
        `UPDATE credit_instruments SET debt = MAX(0, debt + @debt), charged_total = charged_total + @charged,
           settled_total = settled_total + @settled, written_off_total = written_off_total + @writtenOff WHERE id = @id`,
      ),
      outstanding: db.prepare<[string], { currency: string; debt: number }>(
        'SELECT currency, COALESCE(SUM(debt), 0) AS debt FROM credit_instruments WHERE caller_key = ? GROUP BY currency',
      ),
      pendingSum: db.prepare<[string, string], { total: number }>(
        "SELECT COALESCE(SUM(amount), 0) AS total FROM transactions WHERE instrument_id = ? AND status = 'Pending' AND operation = ?",
      ),
      pendingSettlementsForCaller: db.prepare<[string], { total: number }>(
        `SELECT COALESCE(SUM(amount), 0) AS total FROM transactions
         WHERE caller_key = ? AND status = 'Pending' AND operation = 'SETTLE_DEBT'`,
      ),
      transaction: db.prepare<[string], TransactionRow>('SELECT * FROM transactions WHERE id = ?'),
      byCallerReference: db.prepare<[string, string, number], TransactionRow>(
        'SELECT * FROM transactions WHERE caller_key = ? AND caller_reference = ? AND created_at > ? ORDER BY created_at DESC LIMIT 1',
      ),
      insertTransaction: db.prepare(
        `INSERT INTO transactions (id, caller_key, operation, action, caller_reference, params_hash, amount, currency, status,
           status_code, status_message, token_id, instrument_id, instrument_kind, parent_id, pending_outcome, resolve_at, created_at, updated_at)
         VALUES (@id, @caller_key, @operation, @action, @caller_reference, @params_hash, @amount, @currency, @status,
           @status_code, @status_message, @token_id, @instrument_id, @instrument_kind, @parent_id, @pending_outcome, @resolve_at, @created_at, @updated_at)`,
      ),
      setStatus: db.prepare(
        `UPDATE transactions SET status = @status, status_code = @status_code, status_message = @status_message,
           pending_outcome = NULL, resolve_at = NULL, updated_at = @now WHERE id = @id`,
      ),
      setAmounts: db.prepare(
        'UPDATE transactions SET settled_amount = @settled, reserved_amount = @reserved, refunded_amount = @refunded, updated_at = @now WHERE id = @id',
      ),
      nextPending: db.prepare<[], { resolve_at: number | null }>(
        "SELECT MIN(resolve_at) AS resolve_at FROM transactions WHERE status = 'Pending'",
      ),
      duePending: db.prepare<[number], { id: string }>(
        "SELECT id FROM transactions WHERE status = 'Pending' AND resolve_at <= ? ORDER BY resolve_at LIMIT 100",
      ),
      cbuiAuthorization: db.prepare<[string, string], { pipeline: string; params_hash: string; result_json: string }>(
        'SELECT pipeline, params_hash, result_json FROM cbui_authorizations WHERE caller_key = ? AND caller_reference = ?',
      ),
      insertCbuiAuthorization: db.prepare(
        'INSERT INTO cbui_authorizations (caller_key, caller_reference, pipeline, params_hash, result_json, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertCbuiRequest: db.prepare('INSERT INTO cbui_requests (id, params_json, created_at) VALUES (?, ?, ?)'),
      cbuiRequest: db.prepare<[string, number], { params_json: string }>(
        'SELECT params_json FROM cbui_requests WHERE id = ? AND created_at > ?',
      ),
      purgeCbuiRequests: db.prepare('DELETE FROM cbui_requests WHERE created_at <= ?'),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---------------------------------------------------------------- money actions

  /** Pay and Reserve: one purchase on a sender token. */
  pay(callerKey: string, action: 'Pay' | 'Reserve', request: PayRequest): Outcome<TransactionResult> {
    const hash = requestHash(action, request);
    return this.#money(callerKey, request.callerReference, hash, () => {
      const allowed: SandboxTokenType[] =
        action === 'Reserve' ? ['SingleUse'] : ['SingleUse', 'PrepaidSender', 'CreditSender'];
      const token = this.#senderToken(callerKey, request.senderTokenId, allowed, action);
      const amount = request.transactionAmount;
      this.#sameCurrency(amount, token.currency, 'TransactionAmount');
      let instrument: { id: string; kind: InstrumentKind } | null = null;
      if (token.type === 'SingleUse') {
        if (this.#stmt.tokenUsed.get(token.id)) {
          throw fpsError('SameTokenIdUsedMultipleTimes', `single-use token ${token.id} has already been used`);
        }
        if (amount.amount > (token.amount_limit ?? 0)) {
          throw fpsError(
            'TokenUsageError',
            `amount ${formatIpnAmount(amount)} is above the ${formatIpnAmount({ amount: token.amount_limit ?? 0, currency: token.currency })} the buyer authorized`,
          );
        }
      } else if (token.type === 'PrepaidSender') {
        const prepaid = this.#usablePrepaid(callerKey, token.instrument_id!);
        const available = prepaid.balance - this.#pending(prepaid.id, 'PAY');
        if (amount.amount > available) {
          throw fpsError(
            'InsufficientBalance',
            `prepaid balance ${formatIpnAmount({ amount: available, currency: prepaid.currency })} is less than ${formatIpnAmount(amount)}`,
          );
        }
        instrument = { id: prepaid.id, kind: 'prepaid' };
      } else {
        const credit = this.#usableCredit(callerKey, token.instrument_id!);
        const pending = this.#pending(credit.id, 'PAY');
        if (credit.debt + pending + amount.amount > credit.credit_limit) {
          throw fpsError(
            'AccountLimitsExceeded',
            `debt would exceed the credit limit ${formatIpnAmount({ amount: credit.credit_limit, currency: credit.currency })}`,
          );
        }
        if (credit.charged_total + pending + amount.amount > credit.global_amount_limit) {
          throw fpsError(
            'TokenUsageError',
            `charges would exceed the token's globalAmountLimit ${formatIpnAmount({ amount: credit.global_amount_limit, currency: credit.currency })}`,
          );
        }
        instrument = { id: credit.id, kind: 'credit' };
      }
      return {
        operation: action === 'Pay' ? 'PAY' : 'RESERVE',
        action,
        amount,
        token_id: token.id,
        instrument_id: instrument?.id ?? null,
        instrument_kind: instrument?.kind ?? null,
      };
    });
  }

  settle(callerKey: string, request: SettleRequest): TransactionResult {
    return this.db.transaction(() => {
      const reserve = this.#transaction(callerKey, request.reserveTransactionId);
      if (reserve.operation !== 'RESERVE' || reserve.status !== 'Reserved') {
        throw fpsError(
          'InvalidTransactionState',
          `transaction ${reserve.id} is a ${reserve.operation} in status ${reserve.status}; Settle needs a Reserved reserve`,
        );
      }
      const amount = request.transactionAmount ?? { amount: reserve.reserved_amount, currency: reserve.currency };
      this.#sameCurrency(amount, reserve.currency, 'TransactionAmount');
      if (amount.amount > reserve.reserved_amount) {
        throw fpsError(
          'SettleAmountGreaterThanReserveAmount',
          `${formatIpnAmount(amount)} is more than the reserved ${formatIpnAmount({ amount: reserve.reserved_amount, currency: reserve.currency })}`,
        );
      }
      const now = this.#now();
      this.#stmt.setAmounts.run({
        id: reserve.id,
        settled: amount.amount,
        reserved: reserve.reserved_amount,
        refunded: 0,
        now,
      });
      const settled = this.#setStatus(reserve.id, 'Success', now);
      this.#onEvent({ kind: 'TransactionStatus', transaction: settled, operation: 'SETTLE' });
      return { transactionId: reserve.id, transactionStatus: 'Success' as const };
    })();
  }

  refund(callerKey: string, request: RefundRequest): Outcome<TransactionResult> {
    const hash = requestHash('Refund', request);
    return this.#money(callerKey, request.callerReference, hash, () => {
      const original = this.#transaction(callerKey, request.transactionId);
      if (!['PAY', 'RESERVE', 'FUND_PREPAID'].includes(original.operation)) {
        throw fpsError('TransactionTypeNotRefundable', `a ${original.operation} transaction cannot be refunded`);
      }
      if (original.status === 'Pending') {
        throw fpsError('OriginalTransactionIncomplete', `transaction ${original.id} is still Pending`);
      }
      if (original.status === 'Failure')
        throw fpsError('OriginalTransactionFailed', `transaction ${original.id} failed`);
      if (original.status !== 'Success') {
        throw fpsError(
          'InvalidTransactionState',
          `transaction ${original.id} is ${original.status}; only a Success can be refunded`,
        );
      }
      const refundable = original.settled_amount - original.refunded_amount;
      if (refundable <= 0)
        throw fpsError('TransactionFullyRefundedAlready', `transaction ${original.id} is fully refunded`);
      const amount = request.refundAmount ?? { amount: refundable, currency: original.currency };
      this.#sameCurrency(amount, original.currency, 'RefundAmount');
      if (amount.amount > refundable) {
        throw fpsError(
          'RefundAmountExceeded',
          `${formatIpnAmount(amount)} is more than the refundable ${formatIpnAmount({ amount: refundable, currency: original.currency })}`,
        );
      }
      if (original.operation === 'FUND_PREPAID') {
        // Refunding a funding takes money back out of the instrument: only what is not spent or promised.
        const prepaid = this.#stmt.prepaid.get(original.instrument_id!)!;
        const available = prepaid.balance - this.#pending(prepaid.id, 'PAY');
        if (amount.amount > available) {
          throw fpsError(
            'InsufficientBalance',
            `prepaid balance ${formatIpnAmount({ amount: available, currency: prepaid.currency })} is less than the refund ${formatIpnAmount(amount)}`,
          );
        }
      }
      return {
        operation: 'REFUND',
        action: 'Refund',
        amount,
        token_id: original.token_id,
        instrument_id: original.instrument_id,
        instrument_kind: original.instrument_kind,
        parent_id: original.id,
        // Refunds are never magic: they succeed or are refused.
        synchronous: true,
      };
    });
  }

  cancel(callerKey: string, request: CancelRequest): TransactionResult {
    return this.db.transaction(() => {
      const tx = this.#transaction(callerKey, request.transactionId);
      if (tx.status !== 'Reserved' && tx.status !== 'Pending') {
        throw fpsError(
          'InvalidTransactionState',
          `transaction ${tx.id} is ${tx.status}; only Reserved or Pending can be cancelled`,
        );
      }
      const cancelled = this.#setStatus(tx.id, 'Cancelled', this.#now());
      this.#onEvent({ kind: 'TransactionStatus', transaction: cancelled, operation: cancelled.operation });
      return { transactionId: tx.id, transactionStatus: 'Cancelled' as const };
    })();
  }

  fundPrepaid(callerKey: string, request: FundPrepaidRequest): Outcome<TransactionResult> {
    const hash = requestHash('FundPrepaid', request);
    return this.#money(callerKey, request.callerReference, hash, () => {
      const token = this.#senderToken(callerKey, request.senderTokenId, ['PrepaidFunding'], 'FundPrepaid');
      const prepaid = this.#usablePrepaid(callerKey, request.prepaidInstrumentId);
      if (token.instrument_id !== prepaid.id) {
        throw fpsError('InvalidTokenId_Sender', `funding token ${token.id} belongs to another prepaid instrument`);
      }
      const amount = request.fundingAmount;
      this.#sameCurrency(amount, prepaid.currency, 'FundingAmount');
      const incoming = this.#pending(prepaid.id, 'FUND_PREPAID');
      if (prepaid.balance + incoming + amount.amount > prepaid.funding_limit) {
        throw fpsError(
          'PrepaidFundingLimitExceeded',
          `funding ${formatIpnAmount(amount)} would raise the balance above the instrument's limit ${formatIpnAmount({ amount: prepaid.funding_limit, currency: prepaid.currency })}`,
        );
      }
      return {
        operation: 'FUND_PREPAID',
        action: 'FundPrepaid',
        amount,
        token_id: token.id,
        instrument_id: prepaid.id,
        instrument_kind: 'prepaid',
      };
    });
  }

  settleDebt(callerKey: string, request: SettleDebtRequest): Outcome<TransactionResult> {
    const hash = requestHash('SettleDebt', request);
    return this.#money(callerKey, request.callerReference, hash, () => {
      const token = this.#senderToken(callerKey, request.senderTokenId, ['SettlementToken'], 'SettleDebt');
      const credit = this.#creditFor(callerKey, request.creditInstrumentId);
      if (token.instrument_id !== credit.id) {
        throw fpsError('InvalidTokenId_Sender', `settlement token ${token.id} belongs to another credit instrument`);
      }
      const amount = request.settlementAmount;
      this.#sameCurrency(amount, credit.currency, 'SettlementAmount');
      const collectible = credit.debt - this.#pending(credit.id, 'SETTLE_DEBT');
      if (amount.amount > collectible) {
        throw fpsError(
          'SettleAmountGreaterThanDebt',
          `${formatIpnAmount(amount)} is more than the debt ${formatIpnAmount({ amount: collectible, currency: credit.currency })}`,
        );
      }
      return {
        operation: 'SETTLE_DEBT',
        action: 'SettleDebt',
        amount,
        token_id: token.id,
        instrument_id: credit.id,
        instrument_kind: 'credit',
      };
    });
  }

  writeOffDebt(callerKey: string, request: WriteOffDebtRequest): Outcome<TransactionResult> {
    const hash = requestHash('WriteOffDebt', request);
    return this.#money(callerKey, request.callerReference, hash, () => {
      const credit = this.#creditFor(callerKey, request.creditInstrumentId);
      const amount = request.adjustmentAmount;
      this.#sameCurrency(amount, credit.currency, 'AdjustmentAmount');
      const collectible = credit.debt - this.#pending(credit.id, 'SETTLE_DEBT');
      if (amount.amount > collectible) {
        throw fpsError(
          'SettleAmountGreaterThanDebt',
          `${formatIpnAmount(amount)} is more than the debt ${formatIpnAmount({ amount: collectible, currency: credit.currency })}`,
        );
      }
      return {
        operation: 'WRITE_OFF_DEBT',
        action: 'WriteOffDebt',
        amount,
        token_id: null,
        instrument_id: credit.id,
        instrument_kind: 'credit',
        synchronous: true,
      };
    });
  }

  // ---------------------------------------------------------------- read actions

  prepaidBalance(callerKey: string, prepaidInstrumentId: string): PrepaidBalanceResult {
    const prepaid = this.#prepaidFor(callerKey, prepaidInstrumentId);
    const currency = prepaid.currency;
    return {
      availableBalance: { amount: prepaid.balance - this.#pending(prepaid.id, 'PAY'), currency },
      prepaidFundingBalance: { amount: this.#pending(prepaid.id, 'FUND_PREPAID'), currency },
    };
  }

  debtBalance(callerKey: string, creditInstrumentId: string): DebtBalanceResult {
    const credit = this.#creditFor(callerKey, creditInstrumentId);
    return {
      availableBalance: { amount: credit.debt, currency: credit.currency },
      pendingOutBalance: { amount: this.#pending(credit.id, 'SETTLE_DEBT'), currency: credit.currency },
    };
  }

  /** Sum over the caller's credit instruments. FPS only settled USD; other currencies are not added in. */
  outstandingDebt(callerKey: string): OutstandingDebtResult {
    const usd = this.#stmt.outstanding.all(callerKey).find((row) => row.currency === 'USD');
    return {
      outstandingBalance: { amount: usd?.debt ?? 0, currency: 'USD' },
      pendingOutBalance: { amount: this.#stmt.pendingSettlementsForCaller.get(callerKey)!.total, currency: 'USD' },
    };
  }

  transactionStatus(callerKey: string, transactionId: string): TransactionStatusResult {
    const tx = this.#transaction(callerKey, transactionId);
    return {
      transactionId: tx.id,
      transactionStatus: tx.status,
      callerReference: tx.caller_reference,
      statusCode: tx.status_code,
      statusMessage: tx.status_message,
    };
  }

  tokenByCaller(callerKey: string, request: GetTokenByCallerRequest): TokenResult {
    const token =
      request.tokenId !== undefined
        ? this.#stmt.token.get(request.tokenId)
        : this.#stmt.tokenByRef.get(callerKey, request.callerReference);
    if (!token || token.caller_key !== callerKey) {
      throw fpsError(
        'InvalidTokenId',
        request.tokenId !== undefined
          ? `no token ${request.tokenId}`
          : `no token with CallerReference ${request.callerReference}`,
      );
    }
    return {
      tokenId: token.id,
      tokenStatus: token.status,
      tokenType: token.type,
      callerReference: token.caller_reference,
      dateInstalled: new Date(token.date_installed).toISOString(),
    };
  }

  /** Deactivates a token; cancelling an Inactive token again is a no-op. */
  cancelToken(callerKey: string, request: CancelTokenRequest): Record<string, never> {
    this.db.transaction(() => {
      const token = this.#stmt.token.get(request.tokenId);
      if (!token || token.caller_key !== callerKey)
        throw fpsError('InvalidTokenId', `you did not install token ${request.tokenId}`);
      if (token.status === 'Inactive') return;
      this.#stmt.cancelToken.run(this.#now(), request.reasonText ?? null, token.id);
      // Without its sender token an instrument takes no new money; its balance or debt can still
      // be read, refunded, settled or written off.
      if (token.type === 'PrepaidSender') this.#stmt.deactivatePrepaid.run(token.instrument_id);
      if (token.type === 'CreditSender') this.#stmt.deactivateCredit.run(token.instrument_id);
      this.#onEvent({ kind: 'TokenCancellation', token: this.#stmt.token.get(token.id)! });
    })();
    return {};
  }

  // ---------------------------------------------------------------- pending resolution

  /** When the next Pending transaction is due (epoch ms), if any. */
  nextPendingAt(): number | undefined {
    return this.#stmt.nextPending.get()?.resolve_at ?? undefined;
  }

  /** Moves every due Pending transaction to its final status; returns how many changed. */
  resolveDuePending(): number {
    let resolved = 0;
    for (const { id } of this.#stmt.duePending.all(this.#now())) {
      this.db.transaction(() => {
        const tx = this.#stmt.transaction.get(id);
        if (!tx || tx.status !== 'Pending') return; // cancelled meanwhile
        const now = this.#now();
        const final: TransactionStatus =
          tx.pending_outcome === 'Failure' ? 'Failure' : tx.operation === 'RESERVE' ? 'Reserved' : 'Success';
        if (final !== 'Failure') this.#apply(tx, now);
        const changed = this.#setStatus(tx.id, final, now);
        this.#onEvent({ kind: 'TransactionStatus', transaction: changed, operation: tx.operation });
        resolved++;
      })();
    }
    return resolved;
  }

  // ---------------------------------------------------------------- CBUI

  /**
   * Creates the tokens (and instrument) of an approved pipeline, once: approving the same
   * callerReference again returns the same ids; with different parameters it is refused.
   */
  authorizeCbui(auth: CbuiAuthorization): CbuiResult {
    const hash = requestHash(auth.pipeline, auth);
    return this.db.transaction((): CbuiResult => {
      const existing = this.#stmt.cbuiAuthorization.get(auth.callerKey, auth.callerReference);
      if (existing) {
        if (existing.params_hash !== hash) {
          throw fpsError(
            'DuplicateRequest',
            `callerReference ${auth.callerReference} was already authorized with different parameters`,
          );
        }
        return JSON.parse(existing.result_json) as CbuiResult;
      }
      const now = this.#now();
      const references = [
        auth.callerReference,
        auth.prepaid?.callerReferenceFunding,
        auth.postpaid?.callerReferenceSettlement,
      ].filter((r): r is string => r !== undefined);
      if (new Set(references).size !== references.length)
        throw fpsError('InvalidParams', 'the caller references of one pipeline must differ');
      for (const reference of references) {
        if (this.#stmt.tokenByRef.get(auth.callerKey, reference)) {
          throw fpsError('DuplicateRequest', `a token with callerReference ${reference} already exists`);
        }
      }
      const token = (
        type: SandboxTokenType,
        callerReference: string,
        instrumentId: string | null,
        amountLimit: number | null,
      ) => {
        const id = newTokenId();
        this.#stmt.insertToken.run({
          id,
          caller_key: auth.callerKey,
          type,
          caller_reference: callerReference,
          pipeline: auth.pipeline,
          currency: auth.currency,
          amount_limit: amountLimit,
          instrument_id: instrumentId,
          date_installed: now,
        });
        return id;
      };
      let result: CbuiResult;
      if (auth.singleUse) {
        result = {
          tokenID: token('SingleUse', auth.callerReference, null, auth.singleUse.amount),
          callerReference: auth.callerReference,
        };
      } else if (auth.prepaid) {
        const instrumentId = newInstrumentId();
        const senderTokenId = token('PrepaidSender', auth.callerReference, instrumentId, null);
        const fundingTokenId = token('PrepaidFunding', auth.prepaid.callerReferenceFunding, instrumentId, null);
        this.#stmt.insertPrepaid.run({
          id: instrumentId,
          caller_key: auth.callerKey,
          currency: auth.currency,
          funding_limit: auth.prepaid.fundingAmount,
          sender_token_id: senderTokenId,
          funding_token_id: fundingTokenId,
          created_at: now,
          expires_at: auth.expiresAt ?? null,
        });
        result = {
          prepaidInstrumentID: instrumentId,
          fundingTokenID: fundingTokenId,
          prepaidSenderTokenID: senderTokenId,
          callerReferenceSender: auth.callerReference,
          callerReferenceFunding: auth.prepaid.callerReferenceFunding,
        };
      } else if (auth.postpaid) {
        const instrumentId = newInstrumentId();
        const senderTokenId = token('CreditSender', auth.callerReference, instrumentId, null);
        const settlementTokenId = token('SettlementToken', auth.postpaid.callerReferenceSettlement, instrumentId, null);
        this.#stmt.insertCredit.run({
          id: instrumentId,
          caller_key: auth.callerKey,
          currency: auth.currency,
          credit_limit: auth.postpaid.creditLimit,
          global_amount_limit: auth.postpaid.globalAmountLimit,
          sender_token_id: senderTokenId,
          settlement_token_id: settlementTokenId,
          created_at: now,
          expires_at: auth.expiresAt ?? null,
        });
        result = {
          creditInstrumentID: instrumentId,
          creditSenderTokenID: senderTokenId,
          settlementTokenID: settlementTokenId,
          callerReferenceSender: auth.callerReference,
          callerReferenceSettlement: auth.postpaid.callerReferenceSettlement,
        };
      } else {
        throw new TypeError('authorizeCbui: no pipeline details');
      }
      this.#stmt.insertCbuiAuthorization.run(
        auth.callerKey,
        auth.callerReference,
        auth.pipeline,
        hash,
        JSON.stringify(result),
        now,
      );
      return result;
    })();
  }

  /** Keeps a CBUI request until the buyer decides (the page's form carries only the id). */
  saveCbuiRequest(id: string, params: Record<string, string>): void {
    const now = this.#now();
    this.#stmt.purgeCbuiRequests.run(now - CBUI_REQUEST_TTL_MS);
    this.#stmt.insertCbuiRequest.run(id, JSON.stringify(params), now);
  }

  cbuiRequest(id: string): Record<string, string> | undefined {
    const row = this.#stmt.cbuiRequest.get(id, this.#now() - CBUI_REQUEST_TTL_MS);
    return row ? (JSON.parse(row.params_json) as Record<string, string>) : undefined;
  }

  // ---------------------------------------------------------------- inspection (admin)

  transaction(id: string): TransactionRow | undefined {
    return this.#stmt.transaction.get(id);
  }
  token(id: string): TokenRow | undefined {
    return this.#stmt.token.get(id);
  }
  prepaid(id: string): PrepaidRow | undefined {
    return this.#stmt.prepaid.get(id);
  }
  credit(id: string): CreditRow | undefined {
    return this.#stmt.credit.get(id);
  }
  pendingTotal(instrumentId: string, operation: Operation): number {
    return this.#pending(instrumentId, operation);
  }

  listTransactions(filter: { callerReference?: string; instrumentId?: string; limit: number }): TransactionRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.callerReference) {
      where.push('caller_reference = ?');
      args.push(filter.callerReference);
    }
    if (filter.instrumentId) {
      where.push('instrument_id = ?');
      args.push(filter.instrumentId);
    }
    const sql = `SELECT * FROM transactions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, rowid DESC LIMIT ?`;
    return this.db.prepare<unknown[], TransactionRow>(sql).all(...args, filter.limit);
  }

  /** Refunds of a transaction. */
  childrenOf(parentId: string): TransactionRow[] {
    return this.db
      .prepare<[string], TransactionRow>('SELECT * FROM transactions WHERE parent_id = ? ORDER BY created_at, rowid')
      .all(parentId);
  }

  listTokens(limit: number): TokenRow[] {
    return this.db
      .prepare<[number], TokenRow>('SELECT * FROM tokens ORDER BY date_installed DESC, rowid DESC LIMIT ?')
      .all(limit);
  }
  listPrepaid(limit: number): PrepaidRow[] {
    return this.db
      .prepare<[number], PrepaidRow>('SELECT * FROM prepaid_instruments ORDER BY created_at DESC, rowid DESC LIMIT ?')
      .all(limit);
  }
  listCredit(limit: number): CreditRow[] {
    return this.db
      .prepare<[number], CreditRow>('SELECT * FROM credit_instruments ORDER BY created_at DESC, rowid DESC LIMIT ?')
      .all(limit);
  }

  summary() {
    const count = (sql: string) => this.db.prepare<[], { n: number }>(sql).get()!.n;
    const grouped = <K extends string>(sql: string) => this.db.prepare<[], Record<K, string | number>>(sql).all();
    return {
      tokens: grouped<'type' | 'status' | 'n'>(
        'SELECT type, status, COUNT(*) AS n FROM tokens GROUP BY type, status ORDER BY type, status',
      ),
      transactions: grouped<'operation' | 'status' | 'currency' | 'n' | 'amount' | 'settled' | 'refunded'>(
        `SELECT operation, status, currency, COUNT(*) AS n, SUM(amount) AS amount, SUM(settled_amount) AS settled, SUM(refunded_amount) AS refunded
         FROM transactions GROUP BY operation, status, currency ORDER BY operation, status`,
      ),
      prepaid: grouped<'currency' | 'n' | 'balance' | 'funded' | 'spent'>(
        'SELECT currency, COUNT(*) AS n, SUM(balance) AS balance, SUM(funded_total) AS funded, SUM(spent_total) AS spent FROM prepaid_instruments GROUP BY currency',
      ),
      credit: grouped<'currency' | 'n' | 'debt' | 'charged' | 'settled' | 'writtenOff'>(
        `SELECT currency, COUNT(*) AS n, SUM(debt) AS debt, SUM(charged_total) AS charged, SUM(settled_total) AS settled,
           SUM(written_off_total) AS writtenOff FROM credit_instruments GROUP BY currency`,
      ),
      pendingTransactions: count("SELECT COUNT(*) AS n FROM transactions WHERE status = 'Pending'"),
    };
  }

  // ---------------------------------------------------------------- internals

  /**
   * The common shape of every CallerReference money action: replay or refuse a repeated
   * reference, otherwise validate (plan), draw the magic outcome, record, and move the money —
   * all inside one database transaction.
   */
  #money(
    callerKey: string,
    callerReference: string,
    hash: string,
    plan: () => {
      operation: Operation;
      action: FpsAction;
      amount: Money;
      token_id: string | null;
      instrument_id: string | null;
      instrument_kind: InstrumentKind | null;
      parent_id?: string;
      synchronous?: boolean;
    },
  ): Outcome<TransactionResult> {
    return this.db.transaction((): Outcome<TransactionResult> => {
      const now = this.#now();
      const previous = this.#stmt.byCallerReference.get(callerKey, callerReference, now - IDEMPOTENCY_WINDOW_MS);
      if (previous) {
        if (previous.params_hash !== hash) {
          throw fpsError(
            'DuplicateRequest',
            `CallerReference ${callerReference} was already used with different parameters (transaction ${previous.id})`,
          );
        }
        return { result: { transactionId: previous.id, transactionStatus: previous.status }, replayed: true };
      }
      const p = plan();
      const outcome = p.synchronous ? 'success' : magicOutcome(p.amount.amount);
      if (outcome === 'denied')
        throw fpsError(
          'TransactionDenied',
          `the processor declined ${formatIpnAmount(p.amount)} (sandbox magic amount .51)`,
        );
      const status: TransactionStatus =
        outcome === 'success'
          ? p.operation === 'RESERVE'
            ? 'Reserved'
            : 'Success'
          : outcome === 'failure'
            ? 'Failure'
            : 'Pending';
      const text = STATUS_TEXT[status];
      const row: TransactionRow = {
        id: newTransactionId(),
        caller_key: callerKey,
        operation: p.operation,
        action: p.action,
        caller_reference: callerReference,
        params_hash: hash,
        amount: p.amount.amount,
        currency: p.amount.currency,
        status,
        status_code: text.code,
        status_message: text.message,
        token_id: p.token_id,
        instrument_id: p.instrument_id,
        instrument_kind: p.instrument_kind,
        parent_id: p.parent_id ?? null,
        settled_amount: 0,
        refunded_amount: 0,
        reserved_amount: 0,
        pending_outcome:
          outcome === 'pendingThenSuccess' ? 'Success' : outcome === 'pendingThenFailure' ? 'Failure' : null,
        resolve_at: status === 'Pending' ? now + this.#pendingDelayMs : null,
        created_at: now,
        updated_at: now,
      };
      this.#stmt.insertTransaction.run(row);
      if (status === 'Success' || status === 'Reserved') this.#apply(row, now);
      return { result: { transactionId: row.id, transactionStatus: status }, replayed: false };
    })();
  }

  /** Moves the money of a transaction that has just become Success (or Reserved). */
  #apply(tx: TransactionRow, now: number): void {
    const amount = tx.amount;
    const prepaid = (balance: number, funded: number, spent: number) =>
      this.#stmt.prepaidMove.run({ id: tx.instrument_id, balance, funded, spent });
    const credit = (debt: number, charged: number, settled: number, writtenOff: number) =>
      this.#stmt.creditMove.run({ id: tx.instrument_id, debt, charged, settled, writtenOff });
    switch (tx.operation) {
      case 'PAY':
        if (tx.instrument_kind === 'prepaid') prepaid(-amount, 0, amount);
        if (tx.instrument_kind === 'credit') credit(amount, amount, 0, 0);
        break;
      case 'RESERVE':
        this.#stmt.setAmounts.run({ id: tx.id, settled: 0, reserved: amount, refunded: 0, now });
        return;
      case 'FUND_PREPAID':
        prepaid(amount, amount, 0);
        break;
      case 'SETTLE_DEBT':
        credit(-amount, 0, amount, 0);
        break;
      case 'WRITE_OFF_DEBT':
        credit(-amount, 0, 0, amount);
        break;
      case 'REFUND': {
        const original = this.#stmt.transaction.get(tx.parent_id!)!;
        if (original.operation === 'FUND_PREPAID') prepaid(-amount, 0, 0);
        else if (tx.instrument_kind === 'prepaid') prepaid(amount, 0, -amount);
        // A refunded purchase on credit is no longer owed (never below zero: settled debt is not paid back here).
        else if (tx.instrument_kind === 'credit') credit(-amount, 0, 0, 0);
        this.#stmt.setAmounts.run({
          id: original.id,
          settled: original.settled_amount,
          reserved: original.reserved_amount,
          refunded: original.refunded_amount + amount,
          now,
        });
        break;
      }
    }
    this.#stmt.setAmounts.run({ id: tx.id, settled: amount, reserved: 0, refunded: 0, now });
  }

  #setStatus(id: string, status: TransactionStatus, now: number): TransactionRow {
    const text = STATUS_TEXT[status];
    this.#stmt.setStatus.run({ id, status, status_code: text.code, status_message: text.message, now });
    return this.#stmt.transaction.get(id)!;
  }

  #pending(instrumentId: string, operation: Operation): number {
    return this.#stmt.pendingSum.get(instrumentId, operation)!.total;
  }

  #transaction(callerKey: string, id: string): TransactionRow {
    const tx = this.#stmt.transaction.get(id);
    if (!tx || tx.caller_key !== callerKey) throw fpsError('InvalidTransactionId', `no transaction ${id}`);
    return tx;
  }

  #senderToken(callerKey: string, tokenId: string, allowed: readonly SandboxTokenType[], action: string): TokenRow {
    const token = this.#stmt.token.get(tokenId);
    if (!token || token.caller_key !== callerKey) throw fpsError('InvalidTokenId_Sender', `no sender token ${tokenId}`);
    if (token.status !== 'Active') throw fpsError('TokenNotActive_Sender', `token ${tokenId} has been cancelled`);
    if (!allowed.includes(token.type)) {
      throw fpsError(
        'InvalidTokenId_Sender',
        `token ${tokenId} is a ${token.type} token; ${action} takes ${allowed.join(' or ')}`,
      );
    }
    return token;
  }

  #prepaidFor(callerKey: string, id: string): PrepaidRow {
    const prepaid = this.#stmt.prepaid.get(id);
    if (!prepaid) throw fpsError('InvalidParams', `PrepaidInstrumentId ${id} does not exist`);
    if (prepaid.caller_key !== callerKey)
      throw fpsError('InstrumentAccessDenied', `prepaid instrument ${id} is not yours`);
    return prepaid;
  }

  #usablePrepaid(callerKey: string, id: string): PrepaidRow {
    const prepaid = this.#prepaidFor(callerKey, id);
    this.#usable('prepaid', prepaid);
    return prepaid;
  }

  #creditFor(callerKey: string, id: string): CreditRow {
    const credit = this.#stmt.credit.get(id);
    if (!credit) throw fpsError('InvalidParams', `CreditInstrumentId ${id} does not exist`);
    if (credit.caller_key !== callerKey)
      throw fpsError('InstrumentAccessDenied', `credit instrument ${id} is not yours`);
    return credit;
  }

  #usableCredit(callerKey: string, id: string): CreditRow {
    const credit = this.#creditFor(callerKey, id);
    this.#usable('credit', credit);
    return credit;
  }

  /** Spending and funding need a live instrument; settling debt and reading balances do not. */
  #usable(kind: InstrumentKind, instrument: { id: string; status: string; expires_at: number | null }): void {
    if (instrument.status !== 'Active')
      throw fpsError('InactiveInstrument', `${kind} instrument ${instrument.id} is inactive`);
    if (instrument.expires_at !== null && instrument.expires_at <= this.#now()) {
      throw fpsError(
        'InstrumentExpired',
        `${kind} instrument ${instrument.id} expired at ${new Date(instrument.expires_at).toISOString()}`,
      );
    }
  }

  #sameCurrency(amount: Money, currency: string, parameter: string): void {
    if (amount.currency !== currency)
      throw fpsError('InvalidParams', `${parameter} is in ${amount.currency}; the instrument is in ${currency}`);
  }
}

/** How long a CBUI page waits for the buyer. */
export const CBUI_REQUEST_TTL_MS = 24 * 60 * 60 * 1000;
