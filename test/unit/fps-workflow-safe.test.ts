// Modules that workflow code imports must not reach Node APIs (Temporal's workflow sandbox has none).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const FPS_DIR = resolve(__dirname, '../../fps');
const WORKFLOW_SAFE = ['caller-reference', 'money', 'actions', 'errors', 'ipn', 'cbui-return'];

/** The module and every fps/ module it imports (value or type), transitively, with their import specifiers. */
function closure(name: string, seen = new Map<string, string[]>()): Map<string, string[]> {
  if (seen.has(name)) return seen;
  const source = readFileSync(join(FPS_DIR, `${name}.ts`), 'utf8');
  const specifiers = [...source.matchAll(/(?:from|import|require\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
  seen.set(name, specifiers);
  for (const spec of specifiers) {
    if (spec.startsWith('./')) closure(join(dirname(name), spec).replace(/\\/g, '/'), seen);
  }
  return seen;
}

describe('fps: workflow-safe modules', () => {
  for (const name of WORKFLOW_SAFE) {
    it(`fps/${name} imports no Node modules, packages or Node globals, even transitively`, () => {
      for (const [module, specifiers] of closure(name)) {
        for (const spec of specifiers) assert.ok(spec.startsWith('./'), `fps/${module} imports ${spec}`);
        const source = readFileSync(join(FPS_DIR, `${module}.ts`), 'utf8').replace(/\/\/.*$/gm, '');
        assert.doesNotMatch(
          source,
          /\b(Buffer|process|require|__dirname|setTimeout|setImmediate)\b/,
          `fps/${module} uses a Node global`,
        );
      }
    });
  }
});
