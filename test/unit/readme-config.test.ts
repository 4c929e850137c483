// Every environment variable config/index.ts reads is documented in the README's configuration table.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

describe('README documents the configuration', () => {
  it('names every environment variable that config/index.ts reads', () => {
    const source = readFileSync(path.join(root, 'config', 'index.ts'), 'utf8');
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const names = new Set(
      [
        ...source.matchAll(/(?:str|int|list|secret|bool)\('([A-Z][A-Z0-9_]+)'/g),
        ...source.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)/g),
      ].map((m) => m[1]),
    );
    names.delete('XDG_CACHE_HOME');
    assert.ok(names.size > 30, `expected the full list of variables, found ${names.size}`);
    const missing = [...names].filter((name) => !readme.includes(name));
    assert.deepEqual(missing, [], `README.md does not document: ${missing.join(', ')}`);
  });
});
