// FPS calls and their outcomes: opening an operation, the one call it makes (same parameters on
// every re-send), folding answers (call, IPN, status poll) into it, and the background resolvers
// that poll or re-send until an operation has its final outcome.
import { condition, log } from '@temporalio/workflow';
import type { MoneyResult } from '../../activities/fps-activities';
import type { RecordContext, RecordedOperation } from '../../activities/record-contract';
import { isTerminalStatus, type TransactionStatus } from '../../fps/actions';
import { formatDecimal } from '../../fps/money';
import { type PostpaidContext } from '../../machines';
import { type DeclineReason, type TransactionRecord, type TransactionStatusNotification } from '../messages';
import { type OpenOperation } from '../state';
import { verdictFor, classifyFailure, type FpsAnswer } from './verdicts';
import { splitRef } from './refs';
import { Answers } from './answers';

/** Transactions kept for the snapshot query (newest last). */
const RECENT_TRANSACTIONS = 20;

/** Open operations: their FPS calls, answers and resolvers. */
export class FpsCalls extends Answers {
  openOperation(fields: Omit<OpenOperation, 'status' | 'record'>): OpenOperation {
    const record: TransactionRecord = {
      id: fields.id,
      operation: fields.operation,
      amount: fields.amount,
      currency: this.input.currency,
      callerReference: fields.callerReference,
      transactionId: fields.operation === 'capture' || fields.operation === 'void' ? undefined : fields.transactionId,
      status: 'Unknown',
      at: Date.now(),
    };
    const op: OpenOperation = { ...fields, status: 'InFlight', record };
    this.open.set(op.ref, op);
    this.transactions.push(record);
    if (this.transactions.length > RECENT_TRANSACTIONS)
      this.transactions.splice(0, this.transactions.length - RECENT_TRANSACTIONS);
    this.lastTransaction = record;
    this.refresh();
    return op;
  }

  senderTokenId(): string {
    const t = this.tokens;
    if (!t) throw new Error('no tokens: the instrument was never authorized');
    return t.kind === 'prepaid' ? t.prepaidSenderTokenId : t.kind === 'postpaid' ? t.creditSenderTokenId : t.tokenId;
  }

  /** What the record keeps of the operation (activities/record-contract.ts). */
  recordContextOf(op: OpenOperation): RecordContext {
    return {
      instrumentId: this.id,
      customerId: this.input.customerId,
      instrumentType: this.kind,
      operation: op.operation,
      operationId: op.id,
      amount: op.amount,
      currency: this.input.currency,
      parentOperationId: op.purchaseRef ? splitRef(op.purchaseRef).id : undefined,
      description: op.description,
      callerReference: op.callerReference,
      answerFromRecord: op.askRecord,
    };
  }

  /** One FPS call for the operation, with the same parameters every time (a re-send must not be a DuplicateRequest). */
  async call(op: OpenOperation, local: boolean): Promise<FpsAnswer> {
    const acts = local ? this.local : this.remote;
    const amount = { amount: op.amount, currency: this.input.currency };
    const shown = `${this.input.currency} ${formatDecimal(op.amount, this.input.currency)}`;
    const base = { instrumentId: this.id, record: this.recordContextOf(op) };
    const t = this.tokens;
    let run: () => Promise<MoneyResult>;
    let summary: string;
    switch (op.operation) {
      case 'purchase': {
        const input = {
          ...base,
          callerReference: op.callerReference,
          senderTokenId: this.senderTokenId(),
          amount,
          description: op.description,
        };
        summary = `${op.action} ${shown} · ${op.callerReference}`;
        run = () => (op.action === 'Reserve' ? acts.reserve : acts.pay).executeWithOptions({ summary }, [input]);
        break;
      }
      case 'fund': {
        if (t?.kind !== 'prepaid') throw new Error('fund needs prepaid tokens');
        const input = {
          ...base,
          callerReference: op.callerReference,
          prepaidInstrumentId: t.prepaidInstrumentId,
          fundingTokenId: t.fundingTokenId,
          amount,
        };
        summary = `FundPrepaid ${shown} · ${op.callerReference}`;
        run = () => acts.fundPrepaid.executeWithOptions({ summary }, [input]);
        break;
      }
      case 'settle': {
        if (t?.kind !== 'postpaid') throw new Error('settle needs postpaid tokens');
        const input = {
          ...base,
          callerReference: op.callerReference,
          creditInstrumentId: t.creditInstrumentId,
          settlementTokenId: t.settlementTokenId,
          amount,
        };
        summary = `SettleDebt ${shown} · ${op.callerReference}`;
        run = () => acts.settleDebt.executeWithOptions({ summary }, [input]);
        break;
      }
      case 'writeOff': {
        if (t?.kind !== 'postpaid') throw new Error('write-off needs postpaid tokens');
        const input = {
          ...base,
          callerReference: op.callerReference,
          creditInstrumentId: t.creditInstrumentId,
          amount,
        };
        summary = `WriteOffDebt ${shown} · ${op.callerReference}`;
        run = () => acts.writeOffDebt.executeWithOptions({ summary }, [input]);
        break;
      }
      case 'refund': {
        const input = { ...base, callerReference: op.callerReference, transactionId: op.targetTransactionId!, amount };
        summary = `Refund ${shown} of ${op.targetTransactionId} · ${op.callerReference}`;
        run = () => acts.refund.executeWithOptions({ summary }, [input]);
        break;
      }
      case 'capture': {
        const input = { ...base, reserveTransactionId: op.targetTransactionId!, amount };
        summary = `Settle ${shown} of reservation ${op.targetTransactionId}`;
        run = () => acts.settle.executeWithOptions({ summary }, [input]);
        break;
      }
      case 'void': {
        const input = { ...base, transactionId: op.targetTransactionId! };
        summary = `Cancel reservation ${op.targetTransactionId}`;
        run = () => acts.cancel.executeWithOptions({ summary }, [input]);
        break;
      }
    }
    try {
      const r = await run();
      delete op.askRecord; // the call got past its lookup (and found nothing, or the row it answers with)
      if (r.recorded) return { kind: 'recorded', row: r.recorded };
      return { kind: 'status', transactionId: r.transactionId, status: r.transactionStatus };
    } catch (err) {
      const answer = classifyFailure(err);
      if (answer.kind === 'refused') delete op.askRecord; // FPS refused it: the lookup had found nothing
      return answer;
    }
  }

  /** Folds one answer into the operation; no-op once the operation has its final outcome. */
  applyAnswer(op: OpenOperation, answer: FpsAnswer): void {
    if (this.open.get(op.ref) !== op) return;
    if (answer.kind === 'recorded') {
      this.withdraw(op, answer.row);
      return;
    }
    if (answer.kind === 'refused') {
      if (answer.code === 'DuplicateRequest') {
        log.error('FPS answered DuplicateRequest: CallerReference reused with different parameters', {
          instrumentId: this.id,
          callerReference: op.callerReference,
        });
      }
      this.resolve(op, 'Declined', { code: answer.code, message: answer.message });
      return;
    }
    if (answer.kind === 'unknown') {
      if (op.status === 'InFlight') {
        op.status = 'Unknown';
        log.warn('FPS outcome unknown; resolving in the background', {
          instrumentId: this.id,
          callerReference: op.callerReference,
          reason: answer.message,
        });
      }
      this.ensureResolver(op);
      this.refresh();
      return;
    }
    const verdict = verdictFor(op, answer.status);
    if (verdict === 'ignore') {
      // A status that says nothing about this operation: a capture or void polled (or notified)
      // while its reservation is still Reserved. It neither resolves the operation nor makes it
      // Pending; an operation whose own call got no answer stays Unknown, so its resolver re-sends.
      if (op.status === 'InFlight') op.status = 'Unknown';
      this.ensureResolver(op);
      this.refresh();
      return;
    }
    if (!op.transactionId) op.transactionId = answer.transactionId;
    op.record.transactionId = answer.transactionId;
    if (verdict === 'succeeded') {
      this.resolve(op, answer.status);
    } else if (verdict === 'failed') {
      this.resolve(op, answer.status, {
        code: answer.statusCode ?? answer.status,
        message: answer.statusMessage ?? `FPS reported the transaction as ${answer.status}`,
      });
    } else {
      if (op.status !== 'Pending') {
        op.status = 'Pending';
        op.record.status = 'Pending';
        this.apply({ type: 'TRANSACTION_PENDING', ref: op.ref });
      }
      this.ensureResolver(op);
      this.refresh();
    }
  }

  /** The operation's final outcome: machine event, records, follow-up timers. */
  resolve(op: OpenOperation, status: TransactionStatus | 'Declined', reason?: DeclineReason): void {
    const succeeded = status !== 'Declined' && verdictFor(op, status) === 'succeeded';
    this.open.delete(op.ref);
    op.record.status = status;
    op.record.reason = reason;
    op.record.transactionId = op.transactionId;
    this.lastTransaction = op.record;
    this.apply(
      succeeded
        ? { type: 'TRANSACTION_SUCCEEDED', ref: op.ref }
        : { type: 'TRANSACTION_FAILED', ref: op.ref, reason: reason?.code },
    );
    const entry = this.processed.get(op.ref);
    if (entry) this.fillEntry(entry, op);
    if (succeeded && op.operation === 'purchase') this.counters.purchasesApproved++;
    if (succeeded && op.operation === 'refund' && op.purchaseRef) {
      const purchase = this.processed.get(op.purchaseRef);
      if (purchase) purchase.f = (purchase.f ?? 0) + op.amount;
    }
    if (this.kind === 'postpaid') this.afterPostpaidOutcome(op, succeeded);
    this.refresh();
  }

  afterPostpaidOutcome(op: OpenOperation, succeeded: boolean): void {
    const ctx = this.snapshot.context as PostpaidContext;
    if (op.operation === 'settle') {
      if (succeeded) this.timers.settlementRetryAt = undefined;
      else if (this.state === 'active')
        this.timers.settlementRetryAt = Date.now() + this.settings.settlementRetryIntervalMs;
    }
    if (op.operation === 'purchase' && succeeded && this.state === 'active' && !this.timers.settlementRetryAt) {
      const threshold = ctx.creditLimit * this.settings.settlementThresholdPercent;
      if (ctx.debt * 100 >= threshold && !ctx.pending.some((p) => p.operation === 'settle'))
        this.timers.settleSoon = true;
    }
  }
  /** A verified IPN: resolves the open operation it names; late or duplicate ones change nothing. */
  onNotification(n: TransactionStatusNotification): void {
    if (n?.notificationType !== 'TransactionStatus') {
      log.info('notification ignored', {
        instrumentId: this.id,
        notificationType: n?.notificationType,
        tokenId: n?.tokenId,
      });
      return;
    }
    const open = [...this.open.values()];
    const op =
      open.find((o) => o.transactionId === n.transactionId) ??
      open.find((o) => o.callerReference === n.callerReference);
    if (!op) {
      log.info('notification for no open operation (late or duplicate): ignored', {
        instrumentId: this.id,
        transactionId: n.transactionId,
        transactionStatus: n.transactionStatus,
        callerReference: n.callerReference,
      });
      return;
    }
    if (
      !isTerminalStatus(n.transactionStatus) &&
      n.transactionStatus !== 'Reserved' &&
      n.transactionStatus !== 'Pending'
    )
      return;
    if (verdictFor(op, n.transactionStatus) === 'ignore') {
      // E.g. a late or duplicated Reserved IPN for the reservation an open capture or void acts on.
      log.info('notification says nothing about the open operation: ignored', {
        instrumentId: this.id,
        ref: op.ref,
        transactionId: n.transactionId,
        transactionStatus: n.transactionStatus,
      });
      return;
    }
    this.applyAnswer(op, {
      kind: 'status',
      transactionId: n.transactionId,
      status: n.transactionStatus,
      statusCode: n.statusCode,
      statusMessage: n.statusMessage,
    });
  }

  /**
   * A purchase whose pay call found it already counted in the record (a retry of a purchase older
   * than the window): taken back from the machine and from the open operations, as if never applied.
   * If its Update was already answered (pending: the first call's outcome was unknown and a re-send
   * found the row), its answer becomes the record's.
   */
  withdraw(op: OpenOperation, row: RecordedOperation): void {
    this.apply({ type: 'PURCHASE_WITHDRAWN', ref: op.ref });
    this.open.delete(op.ref);
    const shown = this.transactions.indexOf(op.record);
    if (shown >= 0) this.transactions.splice(shown, 1);
    if (this.lastTransaction === op.record) this.lastTransaction = this.transactions.at(-1);
    this.refresh();
    if (this.processed.has(op.ref)) {
      log.warn('pending purchase found already counted in the record: answered from it', {
        instrumentId: this.id,
        ref: op.ref,
        transactionId: row.transactionId,
      });
      this.remember(this.entryFromRecord(op.ref, row), true);
    }
  }

  /** Polls (Pending) or re-sends with the same CallerReference (unknown) until the operation has a final outcome. */
  ensureResolver(op: OpenOperation): void {
    if (this.resolvers.has(op.ref)) return;
    this.resolvers.add(op.ref);
    void this.resolveLoop(op.ref).finally(() => this.resolvers.delete(op.ref));
  }

  async resolveLoop(ref: string): Promise<void> {
    let delay = this.settings.pollInitialMs;
    while (this.open.has(ref)) {
      if (await condition(() => !this.open.has(ref), delay)) return;
      delay = Math.min(delay * 2, this.settings.maxPollIntervalMs);
      const op = this.open.get(ref);
      if (!op) return;
      this.resolverCalls++;
      let answer: FpsAnswer;
      try {
        answer = op.status === 'Pending' && op.transactionId ? await this.pollStatus(op) : await this.call(op, false);
      } finally {
        this.resolverCalls--;
      }
      this.applyAnswer(op, answer);
    }
  }

  async pollStatus(op: OpenOperation): Promise<FpsAnswer> {
    try {
      const r = await this.statusReader.getTransactionStatus.executeWithOptions(
        { summary: `GetTransactionStatus ${op.transactionId} · ${op.callerReference}` },
        [{ instrumentId: this.id, transactionId: op.transactionId!, callerReference: op.callerReference }],
      );
      return {
        kind: 'status',
        transactionId: r.transactionId,
        status: r.transactionStatus,
        statusCode: r.statusCode,
        statusMessage: r.statusMessage,
      };
    } catch (err) {
      // A status read that fails says nothing about the transaction: keep polling.
      const answer = classifyFailure(err);
      return {
        kind: 'unknown',
        message: answer.kind === 'unknown' ? answer.message : `${answer.code}: ${answer.message}`,
      };
    }
  }
}
