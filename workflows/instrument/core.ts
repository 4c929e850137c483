// What one instrument holds (input, machine snapshot, tokens, open operations, processed answers,
// counters, timers), how a run starts it or restores it from continue-as-new, and its activity
// proxies. The layers above (machine, answers, FPS calls, operations, main loop) share this state.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { FpsActivities } from '../../activities/fps-activities';
import type { RecordActivities, RecordedOperation } from '../../activities/record-contract';
import { initialSnapshot, restore, stateName, type InstrumentMachineSnapshot, type MachineKind } from '../../machines';
import { type InstrumentInput, type OperationResult, type TransactionRecord } from '../messages';
import { Mutex } from '../mutex';
import { resolveSettings, type ResolvedSettings } from '../settings';
import {
  isContinuedState,
  type ContinuedState,
  type Counters,
  type InstrumentTokens,
  type OpenOperation,
  type ProcessedEntry,
  type Timers,
} from '../state';
import { validateInput } from './validation';

/** An FPS call (client timeout 10 s by default) gets this long per attempt. */
const FPS_CALL_TIMEOUT = '15s';

/** The state of one instrument and its activity proxies (the base of the layers). */
export class InstrumentCore {
  readonly input: InstrumentInput;
  readonly kind: MachineKind;
  readonly id: string;
  readonly settings: ResolvedSettings;
  snapshot: InstrumentMachineSnapshot;
  tokens: InstrumentTokens | undefined;
  /** Operations without a final FPS answer, by ref. */
  readonly open = new Map<string, OpenOperation>();
  transactions: TransactionRecord[];
  /** Answers by ref, oldest first, at most settings.processedIdLimit. */
  readonly processed = new Map<string, ProcessedEntry>();
  counters: Counters;
  timers: Timers;
  /** Single use: its one purchase. */
  purchaseRef: string | undefined;

  readonly lock = new Mutex();
  /** Operations queued or running in this run, by ref: a duplicate joins the first. */
  readonly inFlight = new Map<string, { amount?: number; result: Promise<OperationResult> }>();
  readonly resolvers = new Set<string>();
  /** Resolver loops currently inside an activity call (continue-as-new waits for none). */
  resolverCalls = 0;
  authorizationReceived = false;
  publishedState: string | undefined;
  lastTransaction: TransactionRecord | undefined;

  readonly local: ReturnType<typeof proxyLocalActivities<FpsActivities>>;
  readonly remote: ReturnType<typeof proxyActivities<FpsActivities>>;
  readonly statusReader: ReturnType<typeof proxyActivities<FpsActivities>>;
  readonly record: ReturnType<typeof proxyLocalActivities<RecordActivities>>;
  /** The record's acknowledgements: scheduled, so they run only once the task that counted is durable. */
  readonly recordAck: ReturnType<typeof proxyActivities<RecordActivities>>;
  /** An acknowledgement activity is running (continue-as-new waits for it). */
  acknowledging = false;
  /** Recorded rows the workflow never counted, found beyond the window and being run again, by ref. */
  readonly rerunning = new Map<string, RecordedOperation>();
  /** The emitting activity for lifecycle and balance.low events (see `emit`). */
  readonly events: ReturnType<typeof proxyActivities<RecordActivities>>;
  /** Events emitted one after another, in the order their transitions happened. */
  emitted: Promise<void> = Promise.resolve();
  /** Emits not yet written (continue-as-new and completion wait for them). */
  emitting = 0;
  /** An EXPIRE is being applied: its state change (if any) emits instrument.expired first. */
  expiring = false;

  constructor(arg: InstrumentInput | ContinuedState) {
    if (isContinuedState(arg)) {
      this.input = arg.input;
      this.kind = arg.input.type;
      this.id = arg.input.instrumentId;
      this.settings = resolveSettings(arg.input.settings);
      this.snapshot = restore(this.kind, arg.machine);
      this.tokens = arg.tokens;
      this.transactions = arg.transactions;
      for (const op of arg.open) {
        // Re-link the open operation to its entry in the recent list, so both show the same record.
        const recent = this.transactions.find(
          (t) =>
            t.callerReference === op.record.callerReference &&
            t.id === op.record.id &&
            t.operation === op.record.operation,
        );
        if (recent) op.record = recent;
        if (op.status === 'InFlight') op.status = 'Unknown';
        this.open.set(op.ref, op);
      }
      for (const entry of arg.processed) this.processed.set(entry.r, entry);
      this.counters = { ...arg.counters, continueAsNewCount: arg.counters.continueAsNewCount + 1 };
      this.timers = arg.timers;
      this.purchaseRef = arg.purchaseRef;
      this.authorizationReceived = stateName(this.snapshot) !== 'awaitingAuthorization';
      this.lastTransaction = this.transactions.at(-1);
    } else {
      validateInput(arg);
      this.input = arg;
      this.kind = arg.type;
      this.id = arg.instrumentId;
      this.settings = resolveSettings(arg.settings);
      this.snapshot = initialSnapshot(this.kind, {
        currency: arg.currency,
        fundingAmount: arg.fundingAmount,
        creditLimit: arg.creditLimit,
        globalAmountLimit: arg.globalAmountLimit,
        settlementRetryLimit: this.settings.settlementRetryLimit,
        amount: arg.amount,
        mode: arg.singleUseMode,
        balanceRules: arg.balanceRules,
      });
      this.tokens = undefined;
      this.transactions = [];
      this.counters = { purchasesApproved: 0, continueAsNewCount: 0, autoSettlements: 0, autoWriteOffs: 0 };
      this.timers = { settlementCycle: 0, settleSoon: false, expiryHandled: false, tokensCancelled: false };
    }

    const retry = {
      initialInterval: this.settings.fpsRetryInitialMs,
      backoffCoefficient: 2,
      maximumInterval: Math.max(2_000, this.settings.fpsRetryInitialMs),
      maximumAttempts: this.settings.fpsCallAttempts,
    };
    // The purchase path: a local activity saves the server round trips of a scheduled one; the
    // call is idempotent by CallerReference, so a re-execution after a crash is safe.
    // localRetryThreshold 0: every retry is a workflow timer and a fresh local activity. Local
    // retries inside SDK core 1.24 leave each earlier attempt's start-to-close timer running, which
    // times the next attempt out early and panics after worker shutdown (test/model/PANIC.md).
    this.local = proxyLocalActivities<FpsActivities>({
      startToCloseTimeout: FPS_CALL_TIMEOUT,
      retry,
      localRetryThreshold: 0,
    });
    this.remote = proxyActivities<FpsActivities>({ startToCloseTimeout: FPS_CALL_TIMEOUT, retry });
    this.statusReader = proxyActivities<FpsActivities>({
      startToCloseTimeout: FPS_CALL_TIMEOUT,
      retry: { ...retry, maximumAttempts: 3 },
    });
    // A read of the ledger store: retried until it answers (an unanswered lookup cannot be skipped).
    this.record = proxyLocalActivities<RecordActivities>({
      startToCloseTimeout: '10s',
      retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
      localRetryThreshold: 0,
    });
    this.recordAck = proxyActivities<RecordActivities>({
      startToCloseTimeout: '10s',
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
    });
    // Scheduled, not local, for the reason acknowledgements are: a local activity runs inside the
    // workflow task, so a task that is then lost (worker crash, server restart, an Update whose
    // acceptance never became durable) would leave an event for a transition that never happened.
    // A scheduled activity's command commits with the task that made the transition. Lifecycle
    // events are rare, so the extra server round trip costs the purchase path nothing. Retried
    // until the record answers: the fact happened, its event must be written.
    this.events = proxyActivities<RecordActivities>({
      startToCloseTimeout: '10s',
      retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
    });
  }
}
