// Drives a machine through events with the same pure functions the workflow uses.
import assert from 'node:assert/strict';
import {
  initialSnapshot,
  persist,
  restore,
  stateName,
  step,
  type InstrumentEvent,
  type InstrumentMachineSnapshot,
  type MachineInput,
  type MachineKind,
} from '../../machines';

export class Drive {
  snapshot: InstrumentMachineSnapshot;
  constructor(
    readonly kind: MachineKind,
    input: MachineInput,
  ) {
    this.snapshot = initialSnapshot(kind, input);
  }

  get state(): string {
    return stateName(this.snapshot);
  }

  get context(): Record<string, unknown> {
    return this.snapshot.context as unknown as Record<string, unknown>;
  }

  /** Sends an event that must be accepted. */
  send(event: InstrumentEvent, expectedState?: string): this {
    assert.ok(this.snapshot.can(event), `${this.kind} in ${this.state} should accept ${JSON.stringify(event)}`);
    const result = step(this.kind, this.snapshot, event);
    assert.ok(result.changed, `${JSON.stringify(event)} should change the snapshot`);
    this.snapshot = result.snapshot;
    if (expectedState) assert.equal(this.state, expectedState, `after ${event.type}`);
    return this;
  }

  /** Sends an event that must be refused: same snapshot, same state. */
  refuse(event: InstrumentEvent): this {
    assert.equal(
      this.snapshot.can(event),
      false,
      `${this.kind} in ${this.state} should refuse ${JSON.stringify(event)}`,
    );
    const before = this.snapshot;
    const result = step(this.kind, this.snapshot, event);
    assert.equal(result.changed, false, `${JSON.stringify(event)} should not change the snapshot`);
    assert.equal(result.snapshot, before);
    return this;
  }

  /** Round-trips through the persisted JSON form, as continue-as-new does. */
  persistAndRestore(): this {
    const json = JSON.parse(JSON.stringify(persist(this.kind, this.snapshot)));
    const restored = restore(this.kind, json);
    assert.equal(stateName(restored), this.state);
    assert.deepEqual(restored.context, this.snapshot.context);
    this.snapshot = restored;
    return this;
  }

  expect(partial: Record<string, unknown>): this {
    for (const [key, value] of Object.entries(partial)) assert.deepEqual(this.context[key], value, `context.${key}`);
    return this;
  }
}
