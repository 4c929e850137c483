// One durable workflow per payment instrument (prepaid, postpaid, single use). The XState machine
// decides which operations are valid; this workflow does the work: it waits for the buyer's
// authorization, runs money operations one at a time through FPS activities (each with a
// CallerReference derived from business ids), resolves Pending/unknown outcomes by IPN or polling,
// drives settlement/write-off/expiry timers, and continues-as-new carrying its state as plain JSON.
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { fpsFailureDetails } from '../activities/failures';
import type { FpsActivities, MoneyResult } from '../activities/fps-activities';
import type { RecordActivities, RecordContext, RecordedOperation } from '../activities/record-contract';
import { isTerminalStatus, type TransactionStatus } from '../fps/actions';
import { callerReferenceFor } from '../fps/caller-reference';
import { formatDecimal, isSupportedCurrency, MAX_MINOR_UNITS } from '../fps/money';
import {
  balanceRulesOf,
  dueTopUpCrossing,
  findPending,
  handles,
  initialSnapshot,
  lowBalanceCrossings,
  isFinal,
  operationRef,
  persist,
  refundableAmount,
  restore,
  stateName,
  step,
  type InstrumentEvent,
  type InstrumentMachineSnapshot,
  type MachineKind,
  type PendingOperation,
  type PostpaidContext,
  type PrepaidContext,
  type SingleUseContext,
} from '../machines';
import {
  authorizationReturnedSignal,
  captureUpdate,
  closeUpdate,
  CustomerIdKey,
  fundUpdate,
  INSTRUMENT_TYPES,
  InstrumentStateKey,
  InstrumentTypeKey,
  purchaseUpdate,
  refundUpdate,
  setBalanceRulesUpdate,
  settleUpdate,
  snapshotQuery,
  operationResultQuery,
  transactionStatusChangedSignal,
  UpdateRejection,
  voidUpdate,
  writeOffUpdate,
  type AuthorizationReturn,
  type BalanceRulesChange,
  type CaptureRequest,
  type CloseRequest,
  type DeclineReason,
  type FundRequest,
  type InstrumentInput,
  type InstrumentSnapshot,
  type OperationResult,
  type PurchaseRequest,
  type PurchaseResult,
  type RefundRequest,
  type TransactionRecord,
  type TransactionStatusNotification,
  type UpdateRejectionType,
  type VoidRequest,
} from './messages';
import { instrumentEventData, lifecycleEventKey, type WorkflowEvent } from './events';
import { Mutex } from './mutex';
import { resolveSettings, type ResolvedSettings } from './settings';
import {
  isContinuedState,
  type ContinuedState,
  type Counters,
  type InstrumentTokens,
  type OpenOperation,
  type OperationName,
  type ProcessedEntry,
  type Timers,
} from './state';

export type { ContinuedState } from './state';

/** Transactions kept for the snapshot query (newest last). */
const RECENT_TRANSACTIONS = 20;
const MAX_ID_LENGTH = 200;
/**
 * Ids the workflow makes for its own operations (initial funding, automatic settlements and
 * write-offs) start with this; callers' ids never may, so the two can never name one operation.
 */
export const OWN_ID_PREFIX = 'wf:';
const INITIAL_FUNDING_ID = `${OWN_ID_PREFIX}initial`;
/** The funding id of the automatic top-up for auto top-up crossing `n`. */
const autoTopUpId = (crossing: number) => `${OWN_ID_PREFIX}auto-${crossing}`;
/** An FPS call (client timeout 10 s by default) gets this long per attempt. */
const FPS_CALL_TIMEOUT = '15s';
/** Marks the workflow code that asks the record about ids beyond the window (for replaying older histories). */
const RECORD_LOOKUP_PATCH = 'record-lookup-beyond-window';
/**
 * Marks the workflow code that acknowledges the record's rows as counted before it forgets their
 * ids, and trusts only counted rows beyond its window (activities/record-contract.ts, migration 004).
 */
const COUNTED_ACK_PATCH = 'record-counted-acknowledgement';
/**
 * Marks the workflow code that emits lifecycle and balance.low events (workflows/events.ts): a
 * history from before it replays its transitions without scheduling the emitting activity.
 */
const EVENTS_PATCH = 'merchant-lifecycle-events';
/** Acknowledgements go in batches of about a tenth of the window (at most 100 ids per activity). */
const ackBatchSize = (processedIdLimit: number) => Math.min(100, Math.max(1, Math.floor(processedIdLimit / 10)));

/** What one FPS call told us. */
type FpsAnswer =
  | { kind: 'status'; transactionId: string; status: TransactionStatus; statusCode?: string; statusMessage?: string }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'unknown'; message: string };

/** What a transaction status means for a given operation. */
type Verdict = 'succeeded' | 'failed' | 'pending' | 'ignore';

function verdictFor(op: Pick<OpenOperation, 'operation' | 'action'>, status: TransactionStatus): Verdict {
  if (status === 'Pending') return 'pending';
  switch (op.operation) {
    case 'purchase':
      if (op.action === 'Reserve') return status === 'Reserved' || status === 'Success' ? 'succeeded' : 'failed';
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    case 'capture':
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    case 'void':
      return status === 'Cancelled' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
    default:
      return status === 'Success' ? 'succeeded' : status === 'Reserved' ? 'ignore' : 'failed';
  }
}

const rejection = (type: UpdateRejectionType, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/** `<operation>:<id>` back into its parts (ids may contain ':'). */
function splitRef(ref: string): { operation: OperationName; id: string } {
  const at = ref.indexOf(':');
  return { operation: ref.slice(0, at) as OperationName, id: ref.slice(at + 1) };
}

function requireId(value: unknown, name: string): asserts value is string {
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

function requireAmount(value: unknown, name = 'amount'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_MINOR_UNITS) {
    throw rejection(
      UpdateRejection.InvalidAmount,
      `${name} must be a positive integer of minor units (at most ${MAX_MINOR_UNITS}), got ${String(value)}`,
    );
  }
}

function requireRequest(value: unknown): void {
  if (typeof value !== 'object' || value === null)
    throw rejection(UpdateRejection.InvalidRequest, 'the request must be an object');
}

function validateInput(input: InstrumentInput): void {
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
function balanceRulesProblem(change: unknown): string | undefined {
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

export async function instrumentWorkflow(arg: InstrumentInput | ContinuedState): Promise<InstrumentSnapshot> {
  const instrument = new Instrument(arg);
  instrument.listen();
  return instrument.run();
}

class Instrument {
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

  // ------------------------------------------------------------------ messages

  listen(): void {
    setHandler(snapshotQuery, () => this.describe());
    setHandler(operationResultQuery, ({ operation, id }) => {
      if (operation === 'close') return null; // close answers with the instrument's state, not a record
      const entry = this.processed.get(operationRef(operation, id));
      return entry ? this.resultOf(entry) : null;
    });

    setHandler(authorizationReturnedSignal, async (ret) => {
      if (this.authorizationReceived || this.state !== 'awaitingAuthorization') {
        log.info('authorization return ignored: already received', { instrumentId: this.id, state: this.state });
        return;
      }
      this.authorizationReceived = true;
      await this.lock.run(() => this.authorize(ret));
    });

    setHandler(transactionStatusChangedSignal, (notification) => this.onNotification(notification));

    setHandler(
      purchaseUpdate,
      (req) =>
        this.operation(operationRef('purchase', req.purchaseId), req.amount, () =>
          this.purchase(req),
        ) as Promise<PurchaseResult>,
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.purchaseId, 'purchaseId');
          const ref = operationRef('purchase', req.purchaseId);
          if (this.isDuplicate(ref, req.amount)) return;
          requireAmount(req.amount);
          this.requireCurrency(req.currency);
          this.checkUnlessMaybeRecorded(ref, () =>
            this.requireAllowed({ type: 'PURCHASE', ref, amount: req.amount }, 'purchase'),
          );
        },
      },
    );

    setHandler(
      fundUpdate,
      (req) => this.operation(operationRef('fund', req.fundingId), req.amount, () => this.fund(req)),
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.fundingId, 'fundingId');
          const ref = operationRef('fund', req.fundingId);
          if (this.isDuplicate(ref, req.amount)) return;
          requireAmount(req.amount);
          this.requireCurrency(req.currency);
          this.checkUnlessMaybeRecorded(ref, () =>
            this.requireAllowed({ type: 'FUND', ref, amount: req.amount }, 'fund'),
          );
        },
      },
    );

    setHandler(
      settleUpdate,
      (req) =>
        this.operation(operationRef('settle', req.settlementId), req.amount, () =>
          this.settle(req.settlementId, req.amount),
        ),
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.settlementId, 'settlementId');
          const ref = operationRef('settle', req.settlementId);
          if (this.isDuplicate(ref, req.amount)) return;
          if (req.amount !== undefined) requireAmount(req.amount);
          this.checkUnlessMaybeRecorded(ref, () => this.requireAllowed(this.settleEvent(ref, req.amount), 'settle'));
        },
      },
    );

    setHandler(
      writeOffUpdate,
      (req) =>
        this.operation(operationRef('writeOff', req.writeOffId), req.amount, () =>
          this.writeOff(req.writeOffId, req.amount),
        ),
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.writeOffId, 'writeOffId');
          const ref = operationRef('writeOff', req.writeOffId);
          if (this.isDuplicate(ref, req.amount)) return;
          if (req.amount !== undefined) requireAmount(req.amount);
          this.checkUnlessMaybeRecorded(ref, () =>
            this.requireAllowed(this.writeOffEvent(ref, req.amount), 'write off'),
          );
        },
      },
    );

    setHandler(
      refundUpdate,
      (req) => this.operation(operationRef('refund', req.refundId), req.amount, () => this.refund(req)),
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.refundId, 'refundId');
          requireId(req.purchaseId, 'purchaseId');
          const ref = operationRef('refund', req.refundId);
          if (this.isDuplicate(ref, req.amount)) return;
          if (req.amount !== undefined) requireAmount(req.amount);
          // A purchase beyond the window is looked up in the record by the handler.
          if (this.mayBeRecorded(operationRef('purchase', req.purchaseId))) return;
          this.checkUnlessMaybeRecorded(ref, () =>
            this.requireAllowed(this.refundEvent(ref, req.purchaseId, req.amount).event, 'refund'),
          );
        },
      },
    );

    setHandler(
      captureUpdate,
      (req) => this.operation(operationRef('capture', req.captureId), req.amount, () => this.capture(req)),
      {
        validator: (req) => {
          requireRequest(req);
          requireId(req.captureId, 'captureId');
          const ref = operationRef('capture', req.captureId);
          if (this.isDuplicate(ref, req.amount)) return;
          if (req.amount !== undefined) requireAmount(req.amount);
          this.checkUnlessMaybeRecorded(ref, () => this.requireAllowed(this.captureEvent(ref, req.amount), 'capture'));
        },
      },
    );

    setHandler(voidUpdate, (req) => this.operation(operationRef('void', req.voidId), undefined, () => this.void(req)), {
      validator: (req) => {
        requireRequest(req);
        requireId(req.voidId, 'voidId');
        const ref = operationRef('void', req.voidId);
        if (this.isDuplicate(ref)) return;
        this.checkUnlessMaybeRecorded(ref, () => this.requireAllowed({ type: 'VOID', ref }, 'void'));
      },
    });

    // Not under the lock: rules change at once, between operations' steps; the machine counts crossings from here on.
    setHandler(setBalanceRulesUpdate, (change) => this.setBalanceRules(change), {
      validator: (change) => {
        const problem = balanceRulesProblem(change);
        if (problem) throw rejection(UpdateRejection.InvalidRequest, problem);
        if (this.kind !== 'prepaid')
          throw rejection(UpdateRejection.InvalidRequest, 'balance rules apply to prepaid instruments only');
        if (isFinal(this.snapshot))
          throw rejection(UpdateRejection.InvalidState, `cannot change balance rules: the instrument is ${this.state}`);
        if (!this.snapshot.can({ type: 'SET_BALANCE_RULES', ...change }))
          throw rejection(UpdateRejection.InvalidRequest, 'invalid balance rules');
      },
    });

    setHandler(closeUpdate, (req) => this.lock.run(async () => this.close(req)), {
      validator: (req) => {
        requireRequest(req);
        if (req.reason !== undefined && typeof req.reason !== 'string')
          throw rejection(UpdateRejection.InvalidRequest, 'reason must be a string');
        if (isFinal(this.snapshot)) return; // closing a finished instrument answers its final state
        this.requireAllowed({ type: 'CLOSE', reason: req.reason }, 'close');
      },
    });
  }

  /** Runs a money operation under the lock, once per ref: duplicates get the first answer. */
  operation(ref: string, amount: number | undefined, body: () => Promise<OperationResult>): Promise<OperationResult> {
    const done = this.processed.get(ref);
    if (done) return Promise.resolve(this.resultOf(done));
    const running = this.inFlight.get(ref);
    if (running) return running.result;
    const result = this.lock.run(async () => {
      // Events of earlier transitions are written first, so an instrument's sequence follows its
      // story (activated before the first purchase.approved). Nothing to wait for on most operations.
      await this.eventsWritten();
      const answered = this.processed.get(ref);
      if (answered) return this.resultOf(answered);
      // This operation is in flight itself now: only the window and open operations count.
      if (this.forgottenMayHold(ref)) {
        const recorded = await this.recordedResult(ref, amount);
        if (recorded) return recorded;
      }
      try {
        return await body();
      } finally {
        this.rerunning.delete(ref);
      }
    });
    this.inFlight.set(ref, { amount, result });
    const forget = () => this.inFlight.delete(ref);
    result.then(forget, forget);
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
   * Whether `ref` may name an operation the workflow has forgotten (it dropped answers from its
   * window of processed ids): then only the record can tell a retry from a new operation.
   */
  mayBeRecorded(ref: string): boolean {
    return !this.inFlight.has(ref) && this.forgottenMayHold(ref);
  }

  /** Neither remembered nor open, and answers have been forgotten: `ref` may be one of them. */
  forgottenMayHold(ref: string): boolean {
    if (this.processed.has(ref) || this.open.has(ref)) return false;
    if (splitRef(ref).id.startsWith(OWN_ID_PREFIX)) return false;
    return (this.counters.forgotten ?? 0) > 0 || this.processed.size >= this.settings.processedIdLimit;
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

  /**
   * The record's row for `ref`, if any (undefined when replaying a history from before the lookup
   * existed). It may be one the workflow never counted (`counted` false): see `countedRow`.
   */
  async findRecorded(ref: string): Promise<RecordedOperation | undefined> {
    if (!patched(RECORD_LOOKUP_PATCH)) return undefined;
    const { operation, id } = splitRef(ref);
    const row = await this.record.findRecordedOperation.executeWithOptions(
      { summary: `record lookup ${operation} ${id}` },
      [{ instrumentId: this.id, operation: operation as RecordedOperation['operation'], operationId: id }],
    );
    return row ?? undefined;
  }

  /**
   * An operation beyond the window that the record holds: answered with its recorded result and
   * remembered again, nothing sent, nothing counted. The same id with another amount is refused.
   */
  async recordedResult(ref: string, amount: number | undefined): Promise<OperationResult | undefined> {
    const row = await this.findRecorded(ref);
    if (!row) return undefined;
    const { operation, id } = splitRef(ref);
    if (amount !== undefined && amount !== row.amount) {
      throw rejection(UpdateRejection.DuplicateId, `${operation} id ${id} was already used with amount ${row.amount}`);
    }
    if (!this.countedRow(row)) {
      // Its activity recorded it, but the workflow task that applied the answer was lost: this
      // workflow never counted it. Run it again: the same CallerReference makes FPS answer the same
      // transaction, and this time it is counted.
      log.warn('recorded operation was never counted: running it again', {
        instrumentId: this.id,
        ref,
        transactionId: row.transactionId,
        status: row.status,
      });
      this.rerunning.set(ref, row);
      return undefined;
    }
    const entry = this.entryFromRecord(ref, row);
    this.remember(entry, true);
    log.info('operation answered from the record', {
      instrumentId: this.id,
      ref,
      transactionId: row.transactionId,
      status: row.status,
    });
    return this.resultOf(entry);
  }

  /** Whether the workflow may answer from `row`: counted ones only (all, in histories from before acknowledgements). */
  countedRow(row: RecordedOperation): boolean {
    return row.counted || !patched(COUNTED_ACK_PATCH);
  }

  /** A processed entry for a recorded operation (its outcome as its verdict had it). */
  entryFromRecord(ref: string, row: RecordedOperation): ProcessedEntry {
    const op: Pick<OpenOperation, 'operation' | 'action'> = {
      operation: splitRef(ref).operation as OpenOperation['operation'],
      action: this.kind === 'single-use' && this.input.singleUseMode === 'reserve' ? 'Reserve' : 'Pay',
    };
    const outcome =
      row.status === 'Declined'
        ? 'declined'
        : verdictFor(op, row.status) === 'succeeded'
          ? 'approved'
          : verdictFor(op, row.status) === 'failed'
            ? 'declined'
            : 'pending';
    return {
      r: ref,
      o: outcome,
      a: row.amount,
      s: row.status,
      t: row.transactionId,
      f: row.refundedAmount || undefined,
      c: row.declineCode ? { code: row.declineCode, message: row.declineReason ?? row.declineCode } : undefined,
      st: this.state,
    };
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
    throw this.refusal(event, what);
  }

  /** The state handles the event but a guard refused it: say which limit. */
  refusal(event: InstrumentEvent, what: string): ApplicationFailure {
    const money = (amount: number) => `${this.input.currency} ${formatDecimal(amount, this.input.currency)}`;
    const ref = 'ref' in event ? event.ref : undefined;
    if (ref && this.snapshot.context.pending.some((op: PendingOperation) => op.ref === ref)) {
      return rejection(UpdateRejection.DuplicateId, `${what} ${ref} is already in progress`);
    }
    switch (event.type) {
      case 'PURCHASE': {
        if (this.kind === 'prepaid') {
          const ctx = this.snapshot.context as PrepaidContext;
          return rejection(
            UpdateRejection.LimitExceeded,
            `${money(event.amount)} is more than the available balance ${money(ctx.balance)}`,
          );
        }
        if (this.kind === 'postpaid') {
          const ctx = this.snapshot.context as PostpaidContext;
          if (ctx.expired) return rejection(UpdateRejection.InvalidState, 'the instrument has expired');
          if (ctx.globalAmountLimit !== null && ctx.totalCharged + event.amount > ctx.globalAmountLimit) {
            return rejection(
              UpdateRejection.LimitExceeded,
              `${money(event.amount)} would exceed the global amount limit ${money(ctx.globalAmountLimit)} (charged ${money(ctx.totalCharged)})`,
            );
          }
          return rejection(
            UpdateRejection.LimitExceeded,
            `${money(event.amount)} would exceed the credit limit ${money(ctx.creditLimit)} (debt ${money(ctx.debt)}, pending ${money(ctx.held)})`,
          );
        }
        const ctx = this.snapshot.context as SingleUseContext;
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} is more than the authorized ${money(ctx.amount)}`,
        );
      }
      case 'SETTLE': {
        const ctx = this.snapshot.context as PostpaidContext;
        if (ctx.debt === 0) return rejection(UpdateRejection.InvalidState, 'there is no debt to settle');
        if (ctx.pending.some((op) => op.operation === 'settle' || op.operation === 'writeOff')) {
          return rejection(UpdateRejection.InvalidState, 'a settlement or write-off is already in progress');
        }
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} is more than the debt ${money(ctx.debt)}`,
        );
      }
      case 'WRITE_OFF': {
        const ctx = this.snapshot.context as PostpaidContext;
        if (ctx.debt === 0) return rejection(UpdateRejection.InvalidState, 'there is no debt to write off');
        if (ctx.pending.length > 0) return rejection(UpdateRejection.InvalidState, 'operations are still in progress');
        return rejection(
          UpdateRejection.LimitExceeded,
          `a write-off covers the whole debt ${money(ctx.debt)}, not ${money(event.amount)}`,
        );
      }
      case 'REFUND':
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} is more than the refundable ${money(event.refundable ?? 0)}`,
        );
      case 'CAPTURE':
        return rejection(
          UpdateRejection.LimitExceeded,
          `${money(event.amount)} is more than the reserved ${money((this.snapshot.context as SingleUseContext).reserved)}`,
        );
      case 'FUND':
        return rejection(UpdateRejection.InvalidAmount, `cannot fund ${money(event.amount)}`);
      case 'CLOSE':
        return rejection(
          UpdateRejection.InvalidState,
          this.kind === 'postpaid' && (this.snapshot.context as PostpaidContext).debt > 0
            ? 'the debt must be settled or written off first'
            : 'operations are still in progress',
        );
      default:
        return rejection(UpdateRejection.InvalidState, `cannot ${what} now`);
    }
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

  async purchase(req: PurchaseRequest): Promise<OperationResult> {
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
    });
    this.applyAnswer(op, await this.call(op, true));
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

  // ------------------------------------------------------------------ FPS calls and outcomes

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
      return { kind: 'status', transactionId: r.transactionId, status: r.transactionStatus };
    } catch (err) {
      return classifyFailure(err);
    }
  }

  /** Folds one answer into the operation; no-op once the operation has its final outcome. */
  applyAnswer(op: OpenOperation, answer: FpsAnswer): void {
    if (this.open.get(op.ref) !== op) return;
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

  /** Records the answer for duplicates and returns the operation's result. */
  finish(op: OpenOperation): OperationResult {
    let entry = this.processed.get(op.ref);
    if (!entry) {
      entry = { r: op.ref, o: 'pending', a: op.amount, st: this.state };
      this.fillEntry(entry, op);
      this.remember(entry);
    }
    return this.resultOf(entry);
  }

  /**
   * Keeps an answer for duplicates. The oldest beyond settings.processedIdLimit are dropped (the
   * record keeps them), each only once the record has acknowledged it as counted. `counted`: the
   * answer came from a counted row of the record.
   */
  remember(entry: ProcessedEntry, counted = false): void {
    if (!counted && patched(COUNTED_ACK_PATCH)) entry.u = 1;
    this.processed.set(entry.r, entry);
    this.forgetAcknowledged();
    this.acknowledgeOldest();
  }

  /** Drops the oldest answers beyond the window, stopping at the first one not yet acknowledged. */
  forgetAcknowledged(): void {
    while (this.processed.size > this.settings.processedIdLimit) {
      const oldest = this.processed.values().next().value!;
      if (oldest.u) return;
      this.processed.delete(oldest.r);
      this.counters.forgotten = (this.counters.forgotten ?? 0) + 1;
    }
  }

  /**
   * Once a batch of answers waits beyond the window, acknowledges them (and the next batch, so the
   * following ones leave without waiting) to the record in one scheduled activity.
   */
  acknowledgeOldest(): void {
    const limit = this.settings.processedIdLimit;
    const batch = ackBatchSize(limit);
    const overflow = this.processed.size - limit;
    if (this.acknowledging || overflow < batch) return;
    const entries: ProcessedEntry[] = [];
    let seen = 0;
    for (const entry of this.processed.values()) {
      if (seen++ >= overflow + batch) break;
      if (entry.u) entries.push(entry);
    }
    if (entries.length > 0) void this.acknowledge(entries);
  }

  /** Tells the record these answers are counted, then forgets what the window no longer holds. */
  async acknowledge(entries: ProcessedEntry[]): Promise<void> {
    this.acknowledging = true;
    try {
      const operations = entries.map((entry) => {
        const { operation, id } = splitRef(entry.r);
        return { operation: operation as RecordedOperation['operation'], operationId: id };
      });
      await this.recordAck.acknowledgeCounted.executeWithOptions(
        { summary: `record: ${operations.length} operation(s) counted` },
        [{ instrumentId: this.id, operations }],
      );
      for (const entry of entries) delete entry.u;
    } finally {
      this.acknowledging = false;
    }
    this.forgetAcknowledged();
    this.acknowledgeOldest();
  }

  /** Before the workflow completes: every answer still unacknowledged, in batches of 500. */
  async acknowledgeAll(): Promise<void> {
    for (;;) {
      // One acknowledgement at a time: `acknowledge` may start the next batch itself when it ends.
      await condition(() => !this.acknowledging);
      const waiting = [...this.processed.values()].filter((entry) => entry.u).slice(0, 500);
      if (waiting.length === 0) return;
      await this.acknowledge(waiting);
    }
  }

  fillEntry(entry: ProcessedEntry, op: OpenOperation): void {
    const status = op.record.status;
    entry.o = this.open.has(op.ref)
      ? 'pending'
      : status !== 'Declined' && status !== 'Unknown' && verdictFor(op, status) === 'succeeded'
        ? 'approved'
        : 'declined';
    entry.s = status;
    entry.t = op.record.transactionId ?? op.transactionId;
    entry.c = op.record.reason;
    entry.st = this.state;
  }

  resultOf(entry: ProcessedEntry): OperationResult {
    const { operation, id } = splitRef(entry.r);
    const status = entry.s && entry.s !== 'Declined' && entry.s !== 'Unknown' ? entry.s : undefined;
    return {
      id,
      operation,
      outcome: entry.o,
      amount: entry.a,
      currency: this.input.currency,
      callerReference: this.callerReferenceOf(operation, id),
      transactionId: entry.t,
      transactionStatus: status,
      reason: entry.c,
      state: entry.st,
    };
  }

  /** The CallerReference an operation sends (derived, so the processed entries need not carry it). */
  callerReferenceOf(operation: OperationName, id: string): string | undefined {
    switch (operation) {
      case 'purchase':
        return callerReferenceFor(
          this.id,
          this.kind === 'single-use' && this.input.singleUseMode === 'reserve' ? 'reserve' : 'pay',
          id,
        );
      case 'writeOff':
        return callerReferenceFor(this.id, 'writeoff', id);
      case 'close':
        return undefined;
      default:
        return callerReferenceFor(this.id, operation, id);
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

  // ------------------------------------------------------------------ machine, search attributes, details

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

  // ------------------------------------------------------------------ the main loop: timers, continue-as-new, completion

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

function classifyFailure(err: unknown): Extract<FpsAnswer, { kind: 'refused' | 'unknown' }> {
  if (err instanceof ActivityFailure || err instanceof ApplicationFailure) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    if (cause instanceof ApplicationFailure) {
      const fps = fpsFailureDetails(cause);
      if (fps && cause.nonRetryable) return { kind: 'refused', code: fps.code, message: fps.message };
    }
    return { kind: 'unknown', message: cause?.message ?? err.message };
  }
  log.error('unexpected error from an activity call', { error: String(err), type: (err as Error)?.constructor?.name });
  throw err;
}
