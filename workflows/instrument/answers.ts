// Answers of processed operations: the window of ids kept for duplicates, its acknowledgements to
// the record (a row is forgotten only once counted), and lookups in the record beyond the window.
import { condition, log, patched } from '@temporalio/workflow';
import type { RecordedOperation } from '../../activities/record-contract';
import { callerReferenceFor } from '../../fps/caller-reference';
import { UpdateRejection, type OperationResult } from '../messages';
import { type OpenOperation, type OperationName, type ProcessedEntry } from '../state';
import { rejection } from './validation';
import { verdictFor } from './verdicts';
import { OWN_ID_PREFIX, splitRef } from './refs';
import { RECORD_LOOKUP_PATCH, COUNTED_ACK_PATCH } from './patches';
import { InstrumentMachine } from './machine';

/** Acknowledgements go in batches of about a tenth of the window (at most 100 ids per activity). */
const ackBatchSize = (processedIdLimit: number) => Math.min(100, Math.max(1, Math.floor(processedIdLimit / 10)));

/** The processed-answers window, its acknowledgements, and the record beyond it. */
export class Answers extends InstrumentMachine {
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
   * An operation beyond the window, looked up in the record by a local activity of its own: if the
   * record holds it, answered from its row (answerFromRow), nothing sent, nothing counted.
   */
  async recordedResult(ref: string, amount: number | undefined): Promise<OperationResult | undefined> {
    const row = await this.findRecorded(ref);
    return row ? this.answerFromRow(ref, row, amount) : undefined;
  }

  /**
   * The answer to an operation the record holds (`row`): its recorded result, remembered again, or
   * undefined when the row was never counted (the operation is run again). The same id with another
   * amount is refused.
   */
  answerFromRow(ref: string, row: RecordedOperation, amount: number | undefined): OperationResult | undefined {
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
}
