// Generates docs/<machine>.mmd (Mermaid stateDiagram-v2) from the machine definitions themselves,
// so the diagrams cannot drift from the code. `npm run diagrams`; `--check` fails if a file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AnyStateMachine } from 'xstate';
import { MACHINES, type MachineKind } from '../machines';

interface GuardLike {
  type?: string;
  name?: string;
}

function guardName(guard: unknown): string | undefined {
  if (!guard) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return (guard as GuardLike).name || 'guard';
  return (guard as GuardLike).type;
}

/** Mermaid for one machine: every state, every transition with its event and guard; self-transitions included. */
export function mermaidFor(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const root = machine.root;
  lines.push(`  [*] --> ${String(root.config.initial)}`);
  for (const [name, node] of Object.entries(root.states)) {
    for (const [eventType, definitions] of node.transitions) {
      for (const definition of definitions) {
        const targets = definition.target?.map((t) => t.key) ?? [name];
        const guard = guardName(definition.guard);
        const label = guard ? `${eventType} [${guard}]` : eventType;
        for (const target of targets) lines.push(`  ${name} --> ${target} : ${label}`);
      }
    }
  }
  for (const [name, node] of Object.entries(root.states)) {
    if (node.type === 'final') lines.push(`  ${name} --> [*]`);
  }
  return `${lines.join('\n')}\n`;
}

export const diagramPath = (kind: MachineKind) => path.resolve(__dirname, '..', 'docs', `${kind}.mmd`);

function main(): void {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [kind, machine] of Object.entries(MACHINES) as [MachineKind, AnyStateMachine][]) {
    const file = diagramPath(kind);
    const text = mermaidFor(machine);
    if (check) {
      let current = '';
      try {
        current = readFileSync(file, 'utf8');
      } catch {
        // Missing counts as stale.
      }
      if (current !== text) {
        stale++;
        console.error(`${path.relative(process.cwd(), file)} is out of date: run npm run diagrams`);
      }
    } else {
      writeFileSync(file, text);
      console.log(`wrote ${path.relative(process.cwd(), file)}`);
    }
  }
  if (stale) process.exit(1);
}

if (require.main === module) main();
