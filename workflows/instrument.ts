// One durable workflow per payment instrument (prepaid, postpaid, single use). The XState machine
// decides which operations are valid; this workflow does the work: it waits for the buyer's
// authorization, runs money operations one at a time through FPS activities (each with a
// CallerReference derived from business ids), resolves Pending/unknown outcomes by IPN or polling,
// drives settlement/write-off/expiry timers, and continues-as-new carrying its state as plain JSON.
//
// The parts live in workflows/instrument/: pure checks (validation, verdicts, refusals, refs,
// patches) and the layers of the one Instrument, each using only those below it:
// core (state) → machine → answers → fps-calls → operations → main-loop; handlers registers the
// workflow's messages on it.
import type { InstrumentInput, InstrumentSnapshot } from './messages';
import type { ContinuedState } from './state';
import { listen } from './instrument/handlers';
import { Instrument } from './instrument/main-loop';

export type { ContinuedState } from './state';
export { OWN_ID_PREFIX } from './instrument/refs';

export async function instrumentWorkflow(arg: InstrumentInput | ContinuedState): Promise<InstrumentSnapshot> {
  const instrument = new Instrument(arg);
  listen(instrument);
  return instrument.run();
}
