// The committed Mermaid diagrams are generated from the machines: fail when they are stale.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AnyStateMachine } from 'xstate';
import { MACHINES, stateNames, type MachineKind } from '../../machines';
import { diagramPath, mermaidFor } from '../../scripts/diagrams';

describe('machine diagrams', () => {
  for (const [kind, machine] of Object.entries(MACHINES) as [MachineKind, AnyStateMachine][]) {
    it(`docs/${kind}.mmd is up to date and shows every state`, () => {
      const text = mermaidFor(machine);
      assert.equal(readFileSync(diagramPath(kind), 'utf8'), text, 'run npm run diagrams');
      for (const state of stateNames(kind)) assert.match(text, new RegExp(`\\b${state}\\b`));
    });
  }
});
