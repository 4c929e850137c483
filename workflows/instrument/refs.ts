// Operation refs (`<operation>:<id>`) and the ids the workflow makes for its own operations.
import { type OperationName } from '../state';

/**
 * Ids the workflow makes for its own operations (initial funding, automatic settlements and
 * write-offs) start with this; callers' ids never may, so the two can never name one operation.
 */
export const OWN_ID_PREFIX = 'wf:';
export const INITIAL_FUNDING_ID = `${OWN_ID_PREFIX}initial`;
/** The funding id of the automatic top-up for auto top-up crossing `n`. */
export const autoTopUpId = (crossing: number) => `${OWN_ID_PREFIX}auto-${crossing}`;
/** `<operation>:<id>` back into its parts (ids may contain ':'). */
export function splitRef(ref: string): { operation: OperationName; id: string } {
  const at = ref.indexOf(':');
  return { operation: ref.slice(0, at) as OperationName, id: ref.slice(at + 1) };
}
