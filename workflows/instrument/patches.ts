// The patched() ids of the instrument workflow. Histories recorded before each change replay
// through the branch without it: never rename or remove one.

/** Marks the workflow code that asks the record about ids beyond the window (for replaying older histories). */
export const RECORD_LOOKUP_PATCH = 'record-lookup-beyond-window';
/**
 * Marks the workflow code that acknowledges the record's rows as counted before it forgets their
 * ids, and trusts only counted rows beyond its window (activities/record-contract.ts, migration 004).
 */
export const COUNTED_ACK_PATCH = 'record-counted-acknowledgement';
/**
 * Marks the workflow code that emits lifecycle and balance.low events (workflows/events.ts): a
 * history from before it replays its transitions without scheduling the emitting activity.
 */
export const EVENTS_PATCH = 'merchant-lifecycle-events';
/**
 * Marks the workflow code where a postpaid purchase beyond the window asks the record in its own pay
 * call (answerFromRecord) instead of a findRecordedOperation local activity before it.
 */
export const RECORD_IN_PAY_PATCH = 'record-lookup-in-pay-call';
