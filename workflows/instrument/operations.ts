// Money operations and their admission: each runs once per ref under the lock (a duplicate gets the
// first answer), checks the machine allows it, applies it, makes its FPS call, and records the answer.
import { log, patched } from '@temporalio/workflow';
import { callerReferenceFor } from '../../fps/caller-reference';
import {
  balanceRulesOf,
  handles,
  isFinal,
  operationRef,
  refundableAmount,
  type InstrumentEvent,
  type PostpaidContext,
  type PrepaidContext,
  type SingleUseContext,
} from '../../machines';
import {
  UpdateRejection,
  type AuthorizationReturn,
  type BalanceRulesChange,
  type CaptureRequest,
  type CloseRequest,
  type FundRequest,
  type InstrumentSnapshot,
  type OperationResult,
  type PurchaseRequest,
  type RefundRequest,
  type VoidRequest,
} from '../messages';
import { type InstrumentTokens, type ProcessedEntry } from '../state';
import { rejection } from './validation';
import { INITIAL_FUNDING_ID, splitRef } from './refs';
import { refusalFor } from './refusals';
import { RECORD_IN_PAY_PATCH } from './patches';
import { FpsCalls } from './fps-calls';

/** The money operations, their admission, and close. */
export class Operations extends FpsCalls {
  /**
   * Runs a money operation under the lock, once per ref: duplicates get the first answer. Beyond the
   * window, the record is asked first; `asksRecordItself` says when the body's own FPS call asks it
   * instead (then the body is run with `askRecord` true).
   */
  operation(
    ref: string,
    amount: number | undefined,
    body: (askRecord: boolean) => Promise<OperationResult>,
    asksRecordItself?: () => boolean,
  ): Promise<OperationResult> {
    const done = this.processed.get(ref);
    if (done) return Promise.resolve(this.resultOf(done));
    const running = this.inFlight.get(ref);
    if (running) return running.result;
    const result = this.lock.run(async () => {
      try {
        // Events of earlier transitions are written first, so an instrument's sequence follows its
        // story (activated before the first purchase.approved). Nothing to wait for on most
        // operations (and no promise made then: each costs the SDK a stack capture).
        if (this.emitting > 0) await this.eventsWritten();
        const answered = this.processed.get(ref);
        if (answered) return this.resultOf(answered);
        // This operation is in flight itself now: only the window and open operations count.
        let askRecord = false;
        if (this.forgottenMayHold(ref)) {
          askRecord = asksRecordItself?.() ?? false;
          const recorded = askRecord ? undefined : await this.recordedResult(ref, amount);
          if (recorded) return recorded;
        }
        return await body(askRecord);
      } finally {
        this.rerunning.delete(ref);
        // Set below before this runs: the lock starts its callback a microtask later at the earliest.
        this.inFlight.delete(ref);
      }
    });
    this.inFlight.set(ref, { amount, result });
    return result;
  }

  /** A request for an operation already answered or running: accepted (the handler answers it), unless its amount differs. */
  isDuplicate(ref: string, amount?: number): boolean {
    const known = this.processed.get(ref)?.a ?? this.inFlight.get(ref)?.amount;
    if (!this.processed.has(ref) && !this.inFlight.has(ref)) return false;
    if (amount !== undefined && known !== undefined && amount !== known) {
      throw rejection(
        UpdateRejection.DuplicateId,
        `${splitRef(ref).operation} id ${splitRef(ref).id} was already used with amount ${known}`,
      );
    }
    return true;
  }
  /**
   * Validator checks for an operation that may be a recorded one: a retry of an old operation is
   * answered with its recorded result even when the same request would be refused as new (the
   * balance has moved on since), so the handler decides after asking the record.
   */
  checkUnlessMaybeRecorded(ref: string, check: () => void): void {
    try {
      check();
    } catch (err) {
      if (!this.mayBeRecorded(ref)) throw err;
    }
  }
  requireCurrency(currency: unknown): void {
    if (currency !== this.input.currency) {
      throw rejection(
        UpdateRejection.InvalidCurrency,
        `currency must be ${this.input.currency}, got ${String(currency)}`,
      );
    }
  }

  /** Throws the UpdateRejection that explains why `event` is not valid now. */
  requireAllowed(event: InstrumentEvent, what: string): void {
    const state = this.state;
    if (isFinal(this.snapshot))
      throw rejection(UpdateRejection.InvalidState, `cannot ${what}: the instrument is ${state}`);
    if (!handles(this.snapshot, event.type))
      throw rejection(UpdateRejection.InvalidState, `cannot ${what} while the instrument is ${state}`);
    if (this.snapshot.can(event)) return;
    throw refusalFor(this.kind, this.snapshot, this.input.currency, event, what);
  }

  // ------------------------------------------------------------------ operations

  async authorize(ret: AuthorizationReturn): Promise<void> {
    if (this.state !== 'awaitingAuthorization') return;
    if (ret.outcome === 'aborted') {
      this.apply({ type: 'AUTHORIZATION_ABORTED' });
      return;
    }
    if (ret.outcome !== 'authorized') {
      this.apply({ type: 'AUTHORIZATION_FAILED', reason: `${ret.status}: ${ret.errorMessage}` });
      return;
    }
    const tokens = this.tokensFrom(ret);
    if (!tokens) {
      log.error('authorization returned tokens of another pipeline', { instrumentId: this.id });
      this.apply({ type: 'AUTHORIZATION_FAILED', reason: 'the authorization returned tokens of another pipeline' });
      return;
    }
    this.tokens = tokens;
    if (this.kind === 'prepaid') {
      const ref = operationRef('fund', INITIAL_FUNDING_ID);
      const amount = this.input.fundingAmount!;
      this.apply({ type: 'AUTHORIZED', ref, amount });
      // instrument.authorized before the initial funding's funding.* event.
      await this.eventsWritten();
      const op = this.openOperation({
        ref,
        id: INITIAL_FUNDING_ID,
        operation: 'fund',
        amount,
        callerReference: callerReferenceFor(this.id, 'fund', INITIAL_FUNDING_ID),
      });
      this.applyAnswer(op, await this.call(op, false));
      this.finish(op);
      return;
    }
    this.apply({ type: 'AUTHORIZED' });
    if (this.kind === 'postpaid') this.timers.nextSettlementAt = Date.now() + this.settings.settlementCycleMs;
  }

  tokensFrom(ret: Extract<AuthorizationReturn, { outcome: 'authorized' }>): InstrumentTokens | undefined {
    const t = ret.tokens as Record<string, unknown>;
    const has = (...keys: string[]) => keys.every((k) => typeof t[k] === 'string' && t[k] !== '');
    if (this.kind === 'prepaid' && has('prepaidInstrumentId', 'fundingTokenId', 'prepaidSenderTokenId')) {
      return {
        kind: 'prepaid',
        prepaidInstrumentId: String(t.prepaidInstrumentId),
        fundingTokenId: String(t.fundingTokenId),
        prepaidSenderTokenId: String(t.prepaidSenderTokenId),
      };
    }
    if (this.kind === 'postpaid' && has('creditInstrumentId', 'creditSenderTokenId', 'settlementTokenId')) {
      return {
        kind: 'postpaid',
        creditInstrumentId: String(t.creditInstrumentId),
        creditSenderTokenId: String(t.creditSenderTokenId),
        settlementTokenId: String(t.settlementTokenId),
      };
    }
    if (this.kind === 'single-use' && has('tokenId')) return { kind: 'single-use', tokenId: String(t.tokenId) };
    return undefined;
  }

  /**
   * Whether a purchase beyond the window asks the record in its own pay call (one local activity
   * instead of two): postpaid, whose machine can withdraw it if the record has counted it before,
   * and only when the machine accepts it now (a retry the machine would refuse as new is looked up
   * first, so it still gets its recorded answer).
   */
  purchaseAsksRecordItself(req: PurchaseRequest): boolean {
    return (
      this.kind === 'postpaid' &&
      this.snapshot.can({ type: 'PURCHASE', ref: operationRef('purchase', req.purchaseId), amount: req.amount }) &&
      patched(RECORD_IN_PAY_PATCH)
    );
  }

  /** A purchase: checked, applied, its one FPS call; `askRecord`: that call looks the record up first. */
  async purchase(req: PurchaseRequest, askRecord = false): Promise<OperationResult> {
    const ref = operationRef('purchase', req.purchaseId);
    this.requireAllowed({ type: 'PURCHASE', ref, amount: req.amount }, 'purchase');
    const action = this.kind === 'single-use' && this.input.singleUseMode === 'reserve' ? 'Reserve' : 'Pay';
    this.apply({ type: 'PURCHASE', ref, amount: req.amount });
    if (this.kind === 'single-use') this.purchaseRef = ref;
    const op = this.openOperation({
      ref,
      id: req.purchaseId,
      operation: 'purchase',
      amount: req.amount,
      callerReference: callerReferenceFor(this.id, action === 'Reserve' ? 'reserve' : 'pay', req.purchaseId),
      action,
      description: req.description,
      ...(askRecord ? { askRecord: true as const } : {}),
    });
    const answer = await this.call(op, true);
    this.applyAnswer(op, answer);
    if (answer.kind === 'recorded') {
      // Withdrawn by applyAnswer: answered from the row, or (never counted after all) run again.
      return this.answerFromRow(ref, answer.row, req.amount) ?? this.purchase(req);
    }
    return this.finish(op);
  }

  async fund(req: FundRequest): Promise<OperationResult> {
    const ref = operationRef('fund', req.fundingId);
    const event: InstrumentEvent = { type: 'FUND', ref, amount: req.amount };
    this.requireAllowed(event, 'fund');
    this.apply(event);
    const op = this.openOperation({
      ref,
      id: req.fundingId,
      operation: 'fund',
      amount: req.amount,
      callerReference: callerReferenceFor(this.id, 'fund', req.fundingId),
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  settleEvent(ref: string, amount: number | undefined): Extract<InstrumentEvent, { type: 'SETTLE' }> {
    const debt = this.kind === 'postpaid' ? (this.snapshot.context as PostpaidContext).debt : 0;
    return { type: 'SETTLE', ref, amount: amount ?? debt };
  }

  async settle(settlementId: string, amount: number | undefined): Promise<OperationResult> {
    const ref = operationRef('settle', settlementId);
    const event = this.settleEvent(ref, amount);
    this.requireAllowed(event, 'settle');
    this.apply(event);
    const op = this.openOperation({
      ref,
      id: settlementId,
      operation: 'settle',
      amount: event.amount,
      callerReference: callerReferenceFor(this.id, 'settle', settlementId),
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  writeOffEvent(ref: string, amount: number | undefined): Extract<InstrumentEvent, { type: 'WRITE_OFF' }> {
    const debt = this.kind === 'postpaid' ? (this.snapshot.context as PostpaidContext).debt : 0;
    return { type: 'WRITE_OFF', ref, amount: amount ?? debt };
  }

  async writeOff(writeOffId: string, amount: number | undefined): Promise<OperationResult> {
    const ref = operationRef('writeOff', writeOffId);
    const event = this.writeOffEvent(ref, amount);
    this.requireAllowed(event, 'write off');
    this.apply(event);
    const op = this.openOperation({
      ref,
      id: writeOffId,
      operation: 'writeOff',
      amount: event.amount,
      callerReference: callerReferenceFor(this.id, 'writeoff', writeOffId),
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  /** The refund event for a purchase, with what is still refundable on it; throws UnknownPurchase / InvalidState. */
  refundEvent(
    ref: string,
    purchaseId: string,
    amount: number | undefined,
  ): { event: Extract<InstrumentEvent, { type: 'REFUND' }>; purchase: ProcessedEntry } {
    const purchaseRef = operationRef('purchase', purchaseId);
    const purchase = this.processed.get(purchaseRef);
    if (!purchase || (this.kind === 'single-use' && purchaseRef !== this.purchaseRef)) {
      throw rejection(UpdateRejection.UnknownPurchase, `no purchase ${purchaseId} on this instrument`);
    }
    if (purchase.o === 'pending')
      throw rejection(UpdateRejection.InvalidState, `purchase ${purchaseId} is still pending`);
    if (purchase.o === 'declined' || !purchase.t)
      throw rejection(UpdateRejection.InvalidState, `purchase ${purchaseId} was declined`);
    let refundable: number;
    if (this.kind === 'single-use') {
      refundable = refundableAmount(this.snapshot.context as SingleUseContext);
    } else {
      const open = [...this.open.values()].filter((op) => op.operation === 'refund' && op.purchaseRef === purchaseRef);
      refundable = purchase.a - (purchase.f ?? 0) - open.reduce((sum, op) => sum + op.amount, 0);
    }
    return { event: { type: 'REFUND', ref, amount: amount ?? refundable, refundable }, purchase };
  }

  async refund(req: RefundRequest): Promise<OperationResult> {
    const ref = operationRef('refund', req.refundId);
    const purchaseRef = operationRef('purchase', req.purchaseId);
    if (this.mayBeRecorded(purchaseRef)) {
      // A purchase older than the window: the record knows it (and what was refunded of it).
      const row = await this.findRecorded(purchaseRef);
      if (row && this.countedRow(row)) {
        const entry = this.entryFromRecord(purchaseRef, row);
        // The record's refunded amount includes this refund if it is being run again (recorded,
        // never counted): FPS will answer it with the same refund, so it is still refundable here.
        const again = this.rerunning.get(ref);
        if (again?.status === 'Success' && again.parentOperationId === req.purchaseId && entry.f)
          entry.f = Math.max(0, entry.f - again.amount) || undefined;
        this.remember(entry, true);
      }
    }
    const { event, purchase } = this.refundEvent(ref, req.purchaseId, req.amount);
    this.requireAllowed(event, 'refund');
    this.apply(event);
    const op = this.openOperation({
      ref,
      id: req.refundId,
      operation: 'refund',
      amount: event.amount,
      callerReference: callerReferenceFor(this.id, 'refund', req.refundId),
      purchaseRef: purchase.r,
      targetTransactionId: purchase.t,
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  captureEvent(ref: string, amount: number | undefined): Extract<InstrumentEvent, { type: 'CAPTURE' }> {
    const reserved = this.kind === 'single-use' ? (this.snapshot.context as SingleUseContext).reserved : 0;
    return { type: 'CAPTURE', ref, amount: amount ?? reserved };
  }

  /** The reservation's FPS transaction (single use, reserve mode). */
  reservationTransactionId(): string {
    const id = this.purchaseRef ? this.processed.get(this.purchaseRef)?.t : undefined;
    if (!id) throw rejection(UpdateRejection.InvalidState, 'there is no reservation');
    return id;
  }

  async capture(req: CaptureRequest): Promise<OperationResult> {
    const ref = operationRef('capture', req.captureId);
    const event = this.captureEvent(ref, req.amount);
    this.requireAllowed(event, 'capture');
    const reservation = this.reservationTransactionId();
    this.apply(event);
    const op = this.openOperation({
      ref,
      id: req.captureId,
      operation: 'capture',
      amount: event.amount,
      callerReference: callerReferenceFor(this.id, 'capture', req.captureId),
      transactionId: reservation,
      targetTransactionId: reservation,
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  async void(req: VoidRequest): Promise<OperationResult> {
    const ref = operationRef('void', req.voidId);
    this.requireAllowed({ type: 'VOID', ref }, 'void');
    const reservation = this.reservationTransactionId();
    const amount = (this.snapshot.context as SingleUseContext).reserved;
    this.apply({ type: 'VOID', ref });
    const op = this.openOperation({
      ref,
      id: req.voidId,
      operation: 'void',
      amount,
      callerReference: callerReferenceFor(this.id, 'void', req.voidId),
      transactionId: reservation,
      targetTransactionId: reservation,
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  close(req: CloseRequest): OperationResult {
    if (!isFinal(this.snapshot)) {
      const event: InstrumentEvent = { type: 'CLOSE', reason: req.reason };
      this.requireAllowed(event, 'close');
      this.apply(event);
    }
    return {
      id: 'close',
      operation: 'close',
      outcome: 'approved',
      amount: 0,
      currency: this.input.currency,
      state: this.state,
    };
  }
  /** Prepaid: the Update's handler (validated): the machine keeps the rules and counts from now. */
  setBalanceRules(change: BalanceRulesChange): InstrumentSnapshot {
    const event: InstrumentEvent = { type: 'SET_BALANCE_RULES' };
    if (change.lowBalanceThreshold !== undefined) event.lowBalanceThreshold = change.lowBalanceThreshold;
    if (change.autoTopUp !== undefined)
      event.autoTopUp = change.autoTopUp && { below: change.autoTopUp.below, amount: change.autoTopUp.amount };
    if (!this.apply(event)) throw rejection(UpdateRejection.InvalidState, `cannot change balance rules now`);
    log.info('balance rules changed', {
      instrumentId: this.id,
      rules: balanceRulesOf(this.snapshot.context as PrepaidContext),
    });
    return this.describe();
  }
}
