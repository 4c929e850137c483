// The machine layer: applies events to the XState snapshot and does what a transition implies
// (timers, lifecycle and balance.low events in order, the state search attribute, Web UI details),
// and describes the instrument for the snapshot query.
import { condition, log, patched, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { formatDecimal } from '../../fps/money';
import {
  lowBalanceCrossings,
  isFinal,
  stateName,
  step,
  type InstrumentEvent,
  type PostpaidContext,
  type PrepaidContext,
  type SingleUseContext,
} from '../../machines';
import { CustomerIdKey, InstrumentStateKey, InstrumentTypeKey, type InstrumentSnapshot } from '../messages';
import { instrumentEventData, lifecycleEventKey, type WorkflowEvent } from '../events';
import { EVENTS_PATCH } from './patches';
import { InstrumentCore } from './core';

/** Machine transitions and what they publish: events, search attributes, details, the snapshot. */
export class InstrumentMachine extends InstrumentCore {
  get state(): string {
    return stateName(this.snapshot);
  }

  /** Applies an event to the machine; false when it was not valid (nothing changed). */
  apply(event: InstrumentEvent): boolean {
    const before = this.state;
    const crossingsBefore = this.kind === 'prepaid' ? lowBalanceCrossings(this.snapshot.context as PrepaidContext) : 0;
    const next = step(this.kind, this.snapshot, event);
    if (!next.changed) return false;
    this.snapshot = next.snapshot;
    const after = this.state;
    if (this.kind === 'prepaid') {
      // Compared, not recomputed: the machine counted the crossing (one per fall below the threshold).
      const crossings = lowBalanceCrossings(this.snapshot.context as PrepaidContext);
      if (crossings > crossingsBefore) this.emitEvent('balance.low', lifecycleEventKey.balanceLow(crossings));
    }
    if (after !== before) this.onStateChange(before, after);
    this.refresh();
    return true;
  }

  /**
   * Queues one lifecycle or balance.low event for the record's outbox, written after the ones
   * before it (so an instrument's sequence follows its transitions). Not awaited by the transition.
   */
  emitEvent(type: WorkflowEvent['type'], eventKey: string): void {
    if (!patched(EVENTS_PATCH)) return;
    const data = instrumentEventData(this.describe());
    if (type === 'balance.low' && this.kind === 'prepaid')
      data.crossing = lowBalanceCrossings(this.snapshot.context as PrepaidContext);
    const input = { type, instrumentId: this.id, customerId: this.input.customerId, eventKey, data };
    this.emitting++;
    this.emitted = this.emitted
      .then(() =>
        this.events.emitInstrumentEvent.executeWithOptions({ summary: `event ${type} (${eventKey})` }, [input]),
      )
      .catch((err: unknown) => {
        log.error('event not written', { instrumentId: this.id, type, eventKey, error: String(err) });
      })
      .finally(() => {
        this.emitting--;
      });
  }

  onStateChange(from: string, to: string): void {
    log.info('instrument state changed', { instrumentId: this.id, from, to });
    if (isFinal(this.snapshot)) {
      this.timers.finalAt ??= Date.now();
      this.timers.settleSoon = false;
      this.timers.settlementRetryAt = this.timers.writeOffAt = this.timers.nextSettlementAt = undefined;
    }
    if (this.kind === 'postpaid' && to === 'delinquent') {
      this.timers.settlementRetryAt = undefined;
      this.timers.writeOffAt = Date.now() + this.settings.writeOffGraceMs;
    }
    if (this.kind === 'postpaid' && to === 'active' && from === 'delinquent') this.timers.writeOffAt = undefined;
    this.emitLifecycle(from, to);
    this.publishState();
  }

  /**
   * Lifecycle events of a state change: authorized when the buyer's authorization is accepted,
   * activated when the instrument first takes purchases (prepaid: after its initial funding),
   * delinquent each time a postpaid account becomes so, closed when it reaches a final state.
   */
  emitLifecycle(from: string, to: string): void {
    const beforeUse = ['awaitingAuthorization', 'funding', 'fundingPending'];
    const final = isFinal(this.snapshot);
    if (this.expiring) {
      // The expiry's event goes before the closing it causes (emits are written in order).
      this.expiring = false;
      this.emitEvent('instrument.expired', lifecycleEventKey.expired());
    }
    if (from === 'awaitingAuthorization' && !final)
      this.emitEvent('instrument.authorized', lifecycleEventKey.authorized());
    if (beforeUse.includes(from) && !final && !beforeUse.includes(to))
      this.emitEvent('instrument.activated', lifecycleEventKey.activated());
    if (this.kind === 'postpaid' && to === 'delinquent') {
      this.counters.delinquencies = (this.counters.delinquencies ?? 0) + 1;
      this.emitEvent('instrument.delinquent', lifecycleEventKey.delinquent(this.counters.delinquencies));
    }
    if (final) this.emitEvent('instrument.closed', lifecycleEventKey.closed());
  }

  /** Waits until the events emitted so far are written (before a step whose own events must follow them). */
  async eventsWritten(): Promise<void> {
    if (this.emitting > 0) await condition(() => this.emitting === 0);
  }

  publishState(): void {
    const state = this.state;
    if (state === this.publishedState) return;
    upsertSearchAttributes([{ key: InstrumentStateKey, value: state }]);
    this.publishedState = state;
  }

  /** Current details for the Web UI: state, balance or debt, last transaction. */
  refresh(): void {
    const money = (amount: number) => `${this.input.currency} ${formatDecimal(amount, this.input.currency)}`;
    const parts = [`**${this.kind}** ${this.id} · state **${this.state}**`];
    const ctx = this.snapshot.context;
    if (this.kind === 'prepaid') parts.push(`balance ${money((ctx as PrepaidContext).balance)}`);
    if (this.kind === 'postpaid') {
      const c = ctx as PostpaidContext;
      parts.push(`debt ${money(c.debt)} of ${money(c.creditLimit)}`);
    }
    if (this.kind === 'single-use') {
      const c = ctx as SingleUseContext;
      parts.push(`authorized ${money(c.amount)}, charged ${money(c.charged)}, refunded ${money(c.refunded)}`);
    }
    if (this.open.size) parts.push(`${this.open.size} open`);
    const last = this.lastTransaction;
    if (last)
      parts.push(
        `last: ${last.operation} ${last.id} ${money(last.amount)} ${last.status}${last.transactionId ? ` (${last.transactionId})` : ''}`,
      );
    setCurrentDetails(parts.join(' · '));
  }

  describe(): InstrumentSnapshot {
    const ctx = this.snapshot.context;
    const snap: InstrumentSnapshot = {
      instrumentId: this.id,
      customerId: this.input.customerId,
      type: this.kind,
      state: this.state,
      currency: this.input.currency,
      pending: [...this.open.values()].map((op) => ({ ...op.record })),
      transactions: this.transactions.map((t) => ({ ...t })),
      purchasesApproved: this.counters.purchasesApproved,
      continueAsNewCount: this.counters.continueAsNewCount,
      closeReason: ctx.closeReason,
      final: isFinal(this.snapshot),
    };
    if (this.kind === 'prepaid') {
      const c = ctx as PrepaidContext;
      snap.balance = c.balance;
      if (c.watch) {
        const { lowBalanceThreshold, autoTopUp } = c.watch.rules;
        snap.balanceRules = {
          lowBalanceThreshold: lowBalanceThreshold ?? undefined,
          autoTopUp: autoTopUp ?? undefined,
          lowBalanceCrossings: c.watch.lowCrossings,
          autoTopUpCrossings: c.watch.topUpCrossings,
        };
      }
    }
    if (this.kind === 'postpaid') {
      const c = ctx as PostpaidContext;
      Object.assign(snap, {
        debt: c.debt,
        creditLimit: c.creditLimit,
        globalAmountLimit: c.globalAmountLimit ?? undefined,
        totalCharged: c.totalCharged,
        settlementFailures: c.settlementFailures,
        nextSettlementAt: this.timers.nextSettlementAt,
      });
    }
    if (this.kind === 'single-use') {
      const c = ctx as SingleUseContext;
      Object.assign(snap, { amount: c.amount, reserved: c.reserved, charged: c.charged, refunded: c.refunded });
    }
    return snap;
  }
  /** Search attributes at start: the API sets them all; a workflow started without them (tests, tools) adds them. */
  publishStart(): void {
    const attrs = workflowInfo().typedSearchAttributes;
    const missing = [] as Array<{ key: typeof CustomerIdKey; value: string }>;
    if (attrs.get(CustomerIdKey) !== this.input.customerId)
      missing.push({ key: CustomerIdKey, value: this.input.customerId });
    if (attrs.get(InstrumentTypeKey) !== this.kind) missing.push({ key: InstrumentTypeKey, value: this.kind });
    this.publishedState = attrs.get(InstrumentStateKey);
    if (this.publishedState !== this.state) missing.push({ key: InstrumentStateKey, value: this.state });
    if (missing.length) upsertSearchAttributes(missing);
    this.publishedState = this.state;
  }
}
