// Path coverage of an instrument machine with xstate/graph (built into xstate 5.33): the shortest
// path to every reachable state (state value + context, within small money bounds), every
// transition out of each of those states (shortest path + one event: every edge of the graph), and
// every simple path through the machine's behaviour classes (the context parts its guards read, so
// cycles such as fund → purchase → fund collapse; tighter bounds, as their number grows
// exponentially). Each path is replayed through machines/index.ts `step()`, the function the
// workflow uses, and after every step the kind's invariants are checked against an independent
// tally of the path's accepted operations and FPS outcomes; late and duplicated outcomes of ended
// operations must change nothing, and final states must not move. Pure, no I/O.
import assert from 'node:assert/strict';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import {
  MACHINES,
  initialSnapshot,
  isFinal,
  stateName,
  step,
  type InstrumentEvent,
  type InstrumentMachineSnapshot,
  type MachineInput,
  type MachineKind,
  type OperationKind,
  type PendingOperation,
} from '../../machines';

/** What a path has done so far, counted from its events, not from the machine. */
export interface Tally {
  /** Operations accepted and not yet given a final outcome, by ref. */
  open: Map<string, { operation: OperationKind; amount: number }>;
  /** Refs whose operation ended (succeeded or failed): a later outcome for them must change nothing. */
  ended: Set<string>;
  /** Sum of succeeded amounts by operation. */
  succeeded: Record<OperationKind, number>;
  /** Succeeded operations in order (for invariants that depend on order, such as a clamped debt). */
  history: Array<{ operation: OperationKind; amount: number }>;
}

export interface GraphSpec {
  kind: MachineKind;
  input: MachineInput;
  /** Concrete events to try in a state (valid and invalid ones), within the spec's money bounds (shortest paths). */
  events: (snapshot: InstrumentMachineSnapshot) => InstrumentEvent[];
  /** The same within tighter bounds, for simple paths (their number grows exponentially with the graph). */
  simpleEvents?: (snapshot: InstrumentMachineSnapshot) => InstrumentEvent[];
  /** What the machine's guards read: states with the same class behave the same (simple paths). */
  behaviourClass: (snapshot: InstrumentMachineSnapshot) => unknown;
  /** The operation an accepted request event opens, with its amount (undefined: not a request). */
  opens: (
    event: InstrumentEvent,
    before: InstrumentMachineSnapshot,
  ) => { ref: string; operation: OperationKind; amount: number } | undefined;
  /** Throws (assert) when an invariant does not hold after a step. */
  invariants: (snapshot: InstrumentMachineSnapshot, tally: Tally, event: InstrumentEvent) => void;
}

export interface GraphResult {
  shortest: number;
  /** Transition paths: a shortest path plus one more accepted event (every edge of the graph). */
  edges: number;
  simple: number;
  /** Steps over all paths, and distinct steps replayed (shared prefixes once). */
  pathSteps: number;
  steps: number;
  transitionsCovered: number;
  transitionsTotal: number;
  uncovered: string[];
  statesReached: string[];
  states: string[];
}

type Path = { steps: Array<{ event: InstrumentEvent }> };

/** `state.EVENT#i`: the i-th candidate transition (guard branch) of a state for an event type. */
interface TransitionLike {
  source: { key: string; transitions: Map<string, unknown[]> };
  eventType: string;
}
const transitionId = (t: TransitionLike) =>
  `${t.source.key}.${t.eventType}#${t.source.transitions.get(t.eventType)!.indexOf(t)}`;

export function allTransitions(kind: MachineKind): string[] {
  const ids: string[] = [];
  for (const node of Object.values(MACHINES[kind].root.states) as unknown as TransitionLike['source'][]) {
    for (const [type, candidates] of node.transitions)
      candidates.forEach((_, i) => ids.push(`${node.key}.${type}#${i}`));
  }
  return ids;
}

/** FPS outcomes, and the postpaid withdrawal of a purchase found already counted (the others ignore it). */
const OUTCOMES = ['TRANSACTION_SUCCEEDED', 'TRANSACTION_PENDING', 'TRANSACTION_FAILED', 'PURCHASE_WITHDRAWN'] as const;
const outcomeEvents = (ref: string): InstrumentEvent[] =>
  OUTCOMES.map((type) => (type === 'TRANSACTION_FAILED' ? { type, ref, reason: 'late' } : { type, ref }));

interface Visit {
  snapshot: InstrumentMachineSnapshot;
  tally: Tally;
}

const cloneTally = (t: Tally): Tally => ({
  open: new Map(t.open),
  ended: new Set(t.ended),
  succeeded: { ...t.succeeded },
  history: [...t.history],
});

/**
 * Replays paths through step(), checking the invariants after every step. Paths share prefixes
 * (simple paths come out of a depth-first search), so each distinct prefix is replayed and checked
 * once: `visited` maps a serialized event prefix to where it leads.
 */
class Replayer {
  readonly covered = new Set<string>();
  readonly reached = new Set<string>();
  /** Distinct steps replayed (prefixes shared between paths count once). */
  steps = 0;
  private readonly visited = new Map<string, Visit>();
  private readonly lateChecked = new Set<string>();
  constructor(private readonly spec: GraphSpec) {}

  /** Replays a path; returns its end. */
  replay(path: Path, label: string): Visit {
    const { spec } = this;
    let visit: Visit = {
      snapshot: initialSnapshot(spec.kind, spec.input),
      tally: {
        open: new Map(),
        ended: new Set(),
        succeeded: { purchase: 0, fund: 0, settle: 0, writeOff: 0, refund: 0, capture: 0, void: 0 },
        history: [],
      },
    };
    let key = '';
    for (const { event } of path.steps) {
      if ((event.type as string) === 'xstate.init') continue;
      key += `${JSON.stringify(event)}\n`;
      const known = this.visited.get(key);
      if (known) {
        visit = known;
        continue;
      }
      visit = this.step(visit, event, label);
      this.visited.set(key, visit);
      this.steps++;
    }
    this.reached.add(stateName(visit.snapshot));
    if (isFinal(visit.snapshot)) {
      // Final states are final: no event moves them (nor an outcome of anything).
      const { snapshot, tally } = visit;
      const tries = [...spec.events(snapshot), ...[...tally.ended, ...tally.open.keys()].flatMap(outcomeEvents)];
      for (const event of tries) {
        assert.equal(step(spec.kind, snapshot, event).changed, false, `${label}: final ${stateName(snapshot)} moved`);
      }
      assert.equal(snapshot.context.pending.length, 0, `${label}: final state with pending operations`);
    }
    return visit;
  }

  /**
   * Every transition out of a path's end: the path plus one accepted event, checked like any step.
   * A transition back to an already reached state (a failed capture returns to `reserved`, a failed
   * write-off to `active`) lies on no shortest or simple path; this covers every edge of the graph.
   */
  edges(path: Path, label: string): number {
    const end = this.replay(path, label);
    let edges = 0;
    for (const event of this.spec.events(end.snapshot)) {
      if (!step(this.spec.kind, end.snapshot, event).changed) continue;
      const next = this.step(end, event, `${label} + ${event.type}`);
      this.reached.add(stateName(next.snapshot));
      this.steps++;
      edges++;
    }
    return edges;
  }

  private step(from: Visit, event: InstrumentEvent, label: string): Visit {
    const { spec } = this;
    const where = `${label}: ${stateName(from.snapshot)} + ${JSON.stringify(event)}`;
    const machine = MACHINES[spec.kind];
    const taken = machine.getTransitionData(from.snapshot as never, event as never) as unknown as TransitionLike[];
    assert.ok(taken.length > 0, `${where}: the path takes an event no transition accepts`);
    for (const t of taken) this.covered.add(transitionId(t));
    const opened = spec.opens(event, from.snapshot);
    const result = step(spec.kind, from.snapshot, event);
    assert.ok(result.changed, `${where}: step() refused an event the graph accepted`);
    const snapshot = result.snapshot;
    const tally = cloneTally(from.tally);
    if (opened) {
      assert.ok(!tally.open.has(opened.ref), `${where}: ${opened.ref} opened twice`);
      tally.open.set(opened.ref, { operation: opened.operation, amount: opened.amount });
      tally.ended.delete(opened.ref);
    }
    // A withdrawn purchase (postpaid) ends like a failed one: nothing of it counts.
    if (
      event.type === 'TRANSACTION_SUCCEEDED' ||
      event.type === 'TRANSACTION_FAILED' ||
      event.type === 'PURCHASE_WITHDRAWN'
    ) {
      const op = tally.open.get(event.ref);
      assert.ok(op, `${where}: an outcome for an operation the path never opened`);
      tally.open.delete(event.ref);
      tally.ended.add(event.ref);
      if (event.type === 'TRANSACTION_SUCCEEDED') {
        tally.succeeded[op.operation] += op.amount;
        tally.history.push(op);
      }
    }
    // Pending operations are exactly the ones the path opened and FPS has not decided.
    assert.deepEqual(
      [...snapshot.context.pending].map((op) => op.ref).sort(),
      [...tally.open.keys()].sort(),
      `${where}: pending operations`,
    );
    // Nothing counted twice: a late or duplicated outcome of an ended operation changes nothing.
    // (Checked once per state and set of ended operations: many steps lead to the same ones.)
    const lateKey = JSON.stringify([snapshot.value, snapshot.context, [...tally.ended].sort()]);
    if (!this.lateChecked.has(lateKey)) {
      this.lateChecked.add(lateKey);
      for (const ref of tally.ended) {
        for (const late of outcomeEvents(ref)) {
          assert.equal(step(spec.kind, snapshot, late).changed, false, `${where}: late ${late.type} for ${ref}`);
        }
      }
    }
    spec.invariants(snapshot, tally, event);
    return { snapshot, tally };
  }
}

/** Explores one machine from one or more inputs (e.g. single use in pay and in reserve mode). */
export function exploreMachine(specs: GraphSpec[]): GraphResult {
  const kind = specs[0].kind;
  const machine = MACHINES[kind];
  const covered = new Set<string>();
  const reached = new Set<string>();
  let steps = 0;
  let pathSteps = 0;
  let shortestCount = 0;
  let edgeCount = 0;
  let simpleCount = 0;
  for (const spec of specs) {
    const options = {
      input: machineInput(spec),
      events: (snapshot: unknown) => spec.events(snapshot as InstrumentMachineSnapshot),
    };
    const shortest = getShortestPaths(machine, options as never) as unknown as Path[];
    const simple = getSimplePaths(machine, {
      ...options,
      events: (snapshot: unknown) => (spec.simpleEvents ?? spec.events)(snapshot as InstrumentMachineSnapshot),
      serializeState: (snapshot: unknown) => JSON.stringify(spec.behaviourClass(snapshot as InstrumentMachineSnapshot)),
    } as never) as unknown as Path[];
    const label = `${kind}${specs.length > 1 ? ` ${JSON.stringify(spec.input)}` : ''}`;
    const replayer = new Replayer(spec);
    shortest.forEach((path, i) => replayer.replay(path, `${label} shortest path ${i}`));
    shortest.forEach((path, i) => (edgeCount += replayer.edges(path, `${label} shortest path ${i}`)));
    simple.forEach((path, i) => replayer.replay(path, `${label} simple path ${i}`));
    for (const id of replayer.covered) covered.add(id);
    for (const state of replayer.reached) reached.add(state);
    steps += replayer.steps;
    pathSteps += [...shortest, ...simple].reduce((sum, path) => sum + path.steps.length - 1, 0);
    shortestCount += shortest.length;
    simpleCount += simple.length;
  }
  const total = allTransitions(kind);
  return {
    shortest: shortestCount,
    edges: edgeCount,
    simple: simpleCount,
    pathSteps,
    steps,
    transitionsCovered: total.filter((id) => covered.has(id)).length,
    transitionsTotal: total.length,
    uncovered: total.filter((id) => !covered.has(id)),
    statesReached: [...reached].sort(),
    states: Object.keys(machine.root.states).sort(),
  };
}

/** The machine input as machines/index.ts initialSnapshot() builds it. */
function machineInput(spec: GraphSpec): Record<string, unknown> {
  const i = spec.input;
  return {
    currency: i.currency,
    fundingAmount: i.fundingAmount,
    creditLimit: i.creditLimit ?? 0,
    globalAmountLimit: i.globalAmountLimit,
    settlementRetryLimit: i.settlementRetryLimit,
    amount: i.amount ?? 0,
    mode: i.mode,
  };
}

export const LIFECYCLE: InstrumentEvent[] = [
  { type: 'AUTHORIZATION_ABORTED' },
  { type: 'AUTHORIZATION_FAILED', reason: 'NP' },
  { type: 'CLOSE' },
  { type: 'EXPIRE' },
];

/** Outcome events for every pending operation. */
export const outcomesOfPending = (snapshot: InstrumentMachineSnapshot): InstrumentEvent[] =>
  snapshot.context.pending.flatMap((op: PendingOperation) => outcomeEvents(op.ref));

export function report(kind: MachineKind, r: GraphResult): void {
  process.stdout.write(
    `      [graph] ${kind}: ${r.shortest} shortest + ${r.edges} transition + ${r.simple} simple paths (${r.pathSteps} steps, ${r.steps} distinct), ` +
      `transitions covered ${r.transitionsCovered}/${r.transitionsTotal}, states ${r.statesReached.length}/${r.states.length}` +
      `${r.uncovered.length ? `; uncovered: ${r.uncovered.join(', ')}` : ''}\n`,
  );
}
