// The main loop: timer-driven work (expiry, automatic settlement, top-up and write-off, token
// cancellation), continue-as-new carrying the state as plain JSON, and completion.
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  log,
  makeContinueAsNewFunc,
  workflowInfo,
} from '@temporalio/workflow';
import { callerReferenceFor } from '../../fps/caller-reference';
import {
  dueTopUpCrossing,
  findPending,
  isFinal,
  operationRef,
  persist,
  type InstrumentEvent,
  type PostpaidContext,
  type PrepaidContext,
} from '../../machines';
import {
  CustomerIdKey,
  InstrumentStateKey,
  InstrumentTypeKey,
  UpdateRejection,
  type InstrumentSnapshot,
  type OperationResult,
} from '../messages';
import { lifecycleEventKey } from '../events';
import { type ContinuedState } from '../state';
import { rejection } from './validation';
import { OWN_ID_PREFIX, autoTopUpId } from './refs';
import { Operations } from './operations';

import type { instrumentWorkflow } from '../instrument';

/** The instrument workflow's state and main loop. */
export class Instrument extends Operations {
  async run(): Promise<InstrumentSnapshot> {
    this.publishStart();
    this.refresh();
    for (const op of this.open.values()) this.ensureResolver(op);
    this.acknowledgeOldest(); // answers carried over from the previous run, waiting beyond the window
    for (;;) {
      const work = this.dueWork(true);
      if (work) {
        // Each piece of work takes the lock itself, behind operations already queued.
        await work();
        continue;
      }
      if (this.finished()) {
        await condition(allHandlersFinished);
        if (!this.finished()) continue;
        await this.acknowledgeAll();
        await this.eventsWritten();
        if (this.finished()) return this.describe();
        continue;
      }
      if (this.shouldContinueAsNew()) {
        await condition(
          () =>
            allHandlersFinished() &&
            !this.lock.busy &&
            this.resolverCalls === 0 &&
            !this.acknowledging &&
            this.emitting === 0,
        );
        return this.continueAsNew();
      }
      const deadline = this.nextTimerAt();
      // Also wake when a handler set an earlier timer than the one being slept on.
      const wake = () =>
        this.dueWork() !== undefined ||
        this.finished() ||
        this.shouldContinueAsNew() ||
        (this.nextTimerAt() ?? Infinity) < (deadline ?? Infinity);
      if (deadline === undefined) await condition(wake);
      else await condition(wake, Math.max(1, deadline - Date.now()));
    }
  }
  shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= this.settings.continueAsNewAfterEvents;
  }

  async continueAsNew(): Promise<never> {
    const state: ContinuedState = {
      continued: true,
      input: this.input,
      machine: persist(this.kind, this.snapshot),
      tokens: this.tokens,
      open: [...this.open.values()],
      transactions: this.transactions,
      processed: [...this.processed.values()],
      counters: this.counters,
      timers: this.timers,
      purchaseRef: this.purchaseRef,
    };
    log.info('continuing as new', {
      instrumentId: this.id,
      historyLength: workflowInfo().historyLength,
      processed: this.processed.size,
    });
    return makeContinueAsNewFunc<typeof instrumentWorkflow>({
      typedSearchAttributes: [
        { key: CustomerIdKey, value: this.input.customerId },
        { key: InstrumentTypeKey, value: this.kind },
        { key: InstrumentStateKey, value: this.state },
      ],
    })(state);
  }

  finished(): boolean {
    return (
      isFinal(this.snapshot) &&
      this.open.size === 0 &&
      (this.timers.tokensCancelled || !this.tokens) &&
      Date.now() >= (this.timers.finalAt ?? 0) + this.settings.closedRetentionMs
    );
  }

  /** When the next timer is due (epoch ms, workflow time), if any. */
  nextTimerAt(): number | undefined {
    const times: number[] = [];
    const t = this.timers;
    if (!t.expiryHandled && this.settings.expiresAt !== undefined) times.push(this.settings.expiresAt);
    for (const at of [t.nextSettlementAt, t.settlementRetryAt, t.writeOffAt]) if (at !== undefined) times.push(at);
    if (isFinal(this.snapshot) && t.finalAt !== undefined) times.push(t.finalAt + this.settings.closedRetentionMs);
    return times.length ? Math.min(...times) : undefined;
  }

  /**
   * The next piece of timer-driven work that is due, or undefined. Pure unless `take` is set: then
   * it also clears what made the work due (condition() calls it with take = false to look only).
   */
  dueWork(take = false): (() => Promise<void>) | undefined {
    const now = Date.now();
    const t = this.timers;
    if (isFinal(this.snapshot)) {
      if (this.tokens && !t.tokensCancelled && this.open.size === 0) {
        if (take) t.tokensCancelled = true;
        return () => this.lock.run(() => this.cancelTokens());
      }
      return undefined;
    }
    if (!t.expiryHandled && this.settings.expiresAt !== undefined && now >= this.settings.expiresAt) {
      // Prepaid and single use close on expiry once nothing is open (postpaid settles first).
      if (this.kind === 'postpaid' || this.open.size === 0) {
        if (take) t.expiryHandled = true;
        return () => this.lock.run(() => this.expire());
      }
    }
    if (this.kind === 'prepaid' && this.tokens) {
      // A crossing below the auto top-up rule's threshold, not yet topped up. The main loop awaits
      // the work, so it is queued once; the machine marks the crossing handled when it starts.
      const crossing = dueTopUpCrossing(this.snapshot.context as PrepaidContext);
      if (crossing !== undefined && this.snapshot.can(this.autoTopUpEvent(crossing)))
        return () => this.autoTopUp(crossing);
      return undefined;
    }
    if (this.kind !== 'postpaid' || !this.tokens) return undefined;
    const ctx = this.snapshot.context as PostpaidContext;
    if (ctx.expired && this.state === 'active' && this.snapshot.can({ type: 'CLOSE' })) {
      return () => this.lock.run(async () => void this.apply({ type: 'CLOSE', reason: 'expired' }));
    }
    if (t.settleSoon) {
      if (take) t.settleSoon = false;
      return () => this.autoSettle('threshold');
    }
    if (t.settlementRetryAt !== undefined && now >= t.settlementRetryAt) {
      if (take) t.settlementRetryAt = undefined;
      return () => this.autoSettle('retry');
    }
    if (t.nextSettlementAt !== undefined && now >= t.nextSettlementAt) {
      if (take) {
        t.settlementCycle++;
        while (t.nextSettlementAt <= now) t.nextSettlementAt += this.settings.settlementCycleMs;
      }
      return () => this.autoSettle('cycle');
    }
    if (t.writeOffAt !== undefined && now >= t.writeOffAt) {
      if (take) t.writeOffAt = undefined;
      return () => this.autoWriteOff();
    }
    return undefined;
  }

  async expire(): Promise<void> {
    this.expiring = true;
    const applied = this.apply({ type: 'EXPIRE' });
    // No state change (postpaid with debt: it settles first, then closes).
    if (applied && this.expiring) this.emitEvent('instrument.expired', lifecycleEventKey.expired());
    this.expiring = false;
    log.info('instrument expired', { instrumentId: this.id, state: this.state, applied });
    if (this.kind === 'postpaid' && !isFinal(this.snapshot) && (this.snapshot.context as PostpaidContext).debt > 0)
      this.timers.settleSoon = true;
  }

  /** A settlement the workflow starts itself; queued behind the operations already waiting for the lock. */
  async autoSettle(why: 'threshold' | 'retry' | 'cycle'): Promise<void> {
    const ctx = this.snapshot.context as PostpaidContext;
    if (ctx.debt === 0) return;
    const id = `${OWN_ID_PREFIX}settle-${this.counters.autoSettlements + 1}`;
    const event = this.settleEvent(operationRef('settle', id), undefined);
    if (!this.snapshot.can(event)) return;
    this.counters.autoSettlements++;
    log.info('automatic settlement', { instrumentId: this.id, why, debt: ctx.debt, settlementId: id });
    await this.background(
      this.operation(event.ref, event.amount, () => this.settle(id, undefined)),
      'automatic settlement',
    );
  }

  autoTopUpEvent(crossing: number): Extract<InstrumentEvent, { type: 'AUTO_TOP_UP' }> {
    return { type: 'AUTO_TOP_UP', ref: operationRef('fund', autoTopUpId(crossing)), crossing };
  }

  /**
   * Prepaid auto top-up for a crossing: a FundPrepaid of the rule's amount cut to the room under
   * the funding limit (the machine's autoTopUpAmount), skipped when there is no room. Its id is the
   * workflow's own (`wf:auto-<crossing>`, CallerReference `<instrument>:fund:wf:auto-<crossing>`),
   * which no caller can send, so a retry or replay funds once; funding.* events come from its row.
   */
  async autoTopUp(crossing: number): Promise<void> {
    const event = this.autoTopUpEvent(crossing);
    const id = autoTopUpId(crossing);
    await this.background(
      this.operation(event.ref, undefined, () => this.topUp(id, event)),
      'automatic top-up',
    );
  }

  async topUp(id: string, event: Extract<InstrumentEvent, { type: 'AUTO_TOP_UP' }>): Promise<OperationResult> {
    if (!this.apply(event)) throw rejection(UpdateRejection.InvalidState, `top-up ${id} is no longer due`);
    const planned = findPending(this.snapshot.context, event.ref);
    if (!planned) {
      log.info('automatic top-up skipped: no room under the funding limit', {
        instrumentId: this.id,
        crossing: event.crossing,
      });
      throw rejection(UpdateRejection.LimitExceeded, `top-up ${id} skipped: no room under the funding limit`);
    }
    log.info('automatic top-up', {
      instrumentId: this.id,
      crossing: event.crossing,
      amount: planned.amount,
      fundingId: id,
    });
    const op = this.openOperation({
      ref: event.ref,
      id,
      operation: 'fund',
      amount: planned.amount,
      callerReference: callerReferenceFor(this.id, 'fund', id),
    });
    this.applyAnswer(op, await this.call(op, false));
    return this.finish(op);
  }

  /** Awaits a workflow-initiated operation; a refusal (the state changed while it queued) is logged, not thrown. */
  async background(result: Promise<OperationResult>, what: string): Promise<void> {
    try {
      const r = await result;
      log.info(`${what} finished`, {
        instrumentId: this.id,
        outcome: r.outcome,
        transactionId: r.transactionId,
        state: r.state,
      });
    } catch (err) {
      if (!(err instanceof ApplicationFailure)) throw err;
      log.info(`${what} not run`, { instrumentId: this.id, reason: err.message });
    }
  }

  async autoWriteOff(): Promise<void> {
    const ctx = this.snapshot.context as PostpaidContext;
    if (this.state !== 'delinquent' || ctx.debt === 0) return;
    const id = `${OWN_ID_PREFIX}writeoff-${this.counters.autoWriteOffs + 1}`;
    const event = this.writeOffEvent(operationRef('writeOff', id), undefined);
    if (!this.snapshot.can(event)) {
      // Operations still open: try again shortly.
      this.timers.writeOffAt = Date.now() + this.settings.pollInitialMs;
      return;
    }
    this.counters.autoWriteOffs++;
    log.info('automatic write-off of a delinquent account', { instrumentId: this.id, debt: ctx.debt, writeOffId: id });
    await this.background(
      this.operation(event.ref, event.amount, () => this.writeOff(id, undefined)),
      'automatic write-off',
    );
  }

  /** A finished instrument's tokens can move no more money: cancel them (best effort). */
  async cancelTokens(): Promise<void> {
    const t = this.tokens;
    if (!t) return;
    const ids =
      t.kind === 'prepaid'
        ? [t.prepaidSenderTokenId, t.fundingTokenId]
        : t.kind === 'postpaid'
          ? [t.creditSenderTokenId, t.settlementTokenId]
          : [t.tokenId];
    // A single-use token FPS made a transaction with is spent already; an unused one (never
    // purchased with, or refused before any transaction, e.g. TransactionDenied) is cancelled.
    if (t.kind === 'single-use' && this.purchaseRef && this.processed.get(this.purchaseRef)?.t) return;
    for (const tokenId of ids) {
      try {
        await this.statusReader.cancelToken.executeWithOptions({ summary: `CancelToken ${tokenId}` }, [
          { instrumentId: this.id, tokenId, reason: this.snapshot.context.closeReason },
        ]);
      } catch (err) {
        log.warn('CancelToken failed; the token stays active at FPS', {
          instrumentId: this.id,
          tokenId,
          error: String(err),
        });
      }
    }
  }
}
