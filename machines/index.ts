// The instrument machines behind one pure interface: the workflow asks "is this event valid here,
// and what is the next state?" through these functions (XState's pure transition API, never an actor).
import { initialTransition, transition, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import type { InstrumentEvent, InstrumentEventType } from './common';
import { postpaidMachine, type PostpaidContext } from './postpaid';
import { prepaidMachine, type BalanceRules, type PrepaidContext } from './prepaid';
import { singleUseMachine, type SingleUseContext } from './single-use';

export * from './common';
export {
  prepaidMachine,
  autoTopUpAmount,
  balanceRulesOf,
  dueTopUpCrossing,
  fundingHeadroom,
  lowBalanceCrossings,
  type BalanceRules,
  type BalanceWatch,
  type PrepaidContext,
  type PrepaidInput,
} from './prepaid';
export {
  postpaidMachine,
  exposureOf,
  pendingSettlementAmount,
  type PostpaidContext,
  type PostpaidInput,
} from './postpaid';
export { singleUseMachine, refundableAmount, type SingleUseContext, type SingleUseInput } from './single-use';

/** Same strings as the workflow's InstrumentType (machines import nothing from other folders). */
export type MachineKind = 'prepaid' | 'postpaid' | 'single-use';

export const MACHINES = {
  prepaid: prepaidMachine,
  postpaid: postpaidMachine,
  'single-use': singleUseMachine,
} as const satisfies Record<MachineKind, AnyStateMachine>;

export interface MachineInput {
  currency: string;
  fundingAmount?: number;
  creditLimit?: number;
  globalAmountLimit?: number;
  settlementRetryLimit?: number;
  amount?: number;
  mode?: 'pay' | 'reserve';
  /** prepaid */
  balanceRules?: Partial<BalanceRules>;
}

export type InstrumentContext = PrepaidContext | PostpaidContext | SingleUseContext;

/** A machine snapshot; its context is the instrument kind's context. */
export type InstrumentMachineSnapshot = AnyMachineSnapshot & { context: InstrumentContext };

/** The plain-JSON form carried across continue-as-new (machine.getPersistedSnapshot). */
export type PersistedMachineState = Record<string, unknown>;

const machineOf = (kind: MachineKind): AnyStateMachine => MACHINES[kind];

export function initialSnapshot(kind: MachineKind, input: MachineInput): InstrumentMachineSnapshot {
  const machine = machineOf(kind);
  const [snapshot] = initialTransition(machine, {
    currency: input.currency,
    fundingAmount: input.fundingAmount,
    creditLimit: input.creditLimit ?? 0,
    globalAmountLimit: input.globalAmountLimit,
    settlementRetryLimit: input.settlementRetryLimit,
    amount: input.amount ?? 0,
    mode: input.mode,
    balanceRules: input.balanceRules,
  });
  return snapshot as InstrumentMachineSnapshot;
}

export interface Step {
  snapshot: InstrumentMachineSnapshot;
  /** False when the event was not valid in this state (no handler, or every guard failed). */
  changed: boolean;
}

/** Applies one event. An invalid event returns the same snapshot with changed = false. */
export function step(kind: MachineKind, snapshot: InstrumentMachineSnapshot, event: InstrumentEvent): Step {
  const [next] = transition(machineOf(kind), snapshot, event);
  return { snapshot: next as InstrumentMachineSnapshot, changed: next !== snapshot };
}

/** Would `event` be accepted now (state handles it and a guard passes)? */
export const can = (snapshot: InstrumentMachineSnapshot, event: InstrumentEvent): boolean => snapshot.can(event);

/** Does the current state handle this event type at all (whatever its guards say)? Tells an invalid state from a failed limit. */
export function handles(snapshot: InstrumentMachineSnapshot, type: InstrumentEventType): boolean {
  return snapshot._nodes.some((node) => Object.prototype.hasOwnProperty.call(node.on, type));
}

export const persist = (kind: MachineKind, snapshot: InstrumentMachineSnapshot): PersistedMachineState =>
  machineOf(kind).getPersistedSnapshot(snapshot) as PersistedMachineState;

export const restore = (kind: MachineKind, persisted: PersistedMachineState): InstrumentMachineSnapshot =>
  machineOf(kind).resolveState(persisted as never) as InstrumentMachineSnapshot;

/** The state's name, e.g. 'active' (all machines are flat). */
export const stateName = (snapshot: InstrumentMachineSnapshot): string =>
  typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value);

/** A final state: the instrument's life is over and no event moves it again. */
export const isFinal = (snapshot: InstrumentMachineSnapshot): boolean => snapshot.status === 'done';

/** Every state name of a machine, for validation and diagrams. */
export const stateNames = (kind: MachineKind): string[] => Object.keys(machineOf(kind).root.states);
