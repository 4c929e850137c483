// client/ is a package of its own: package.json names its entry, loading it pulls in no server
// module (only client/ files; api/ is imported for types alone), and the deliverer signs with the
// very functions the client verifies with.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { config } from '../../config';
import * as clientSignature from '../../client/signature';
import * as serverSignature from '../../webhooks/signature';

const root = config().root;
const clientDir = path.join(root, 'client');

describe('client: the package', () => {
  it('package.json names @fps-temporal/client with its entry and types', () => {
    const pkg = JSON.parse(readFileSync(path.join(clientDir, 'package.json'), 'utf8'));
    assert.equal(pkg.name, '@fps-temporal/client');
    assert.equal(pkg.main, './index.ts');
    assert.equal(pkg.types, './index.ts');
    assert.equal(pkg.dependencies, undefined, 'no run-time dependencies: global fetch and node:crypto');
  });

  it('loads by its directory (package.json main) without loading any module outside client/', () => {
    const script = `
      const client = require(${JSON.stringify(clientDir)});
      const loaded = Object.keys(require.cache).filter((f) => !f.includes('node_modules'));
      process.stdout.write(JSON.stringify({ exports: Object.keys(client).sort(), loaded }));`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], { cwd: root, encoding: 'utf8' }),
    ) as { exports: string[]; loaded: string[] };
    for (const name of ['FpsClient', 'constructEvent', 'FpsApiError', 'PaymentDeclinedError', 'verify', 'sign'])
      assert.ok(out.exports.includes(name), `${name} exported`);
    assert.ok(out.loaded.length >= 4, out.loaded.join('\n'));
    const outside = out.loaded.filter((file) => !file.startsWith(clientDir + path.sep));
    assert.deepEqual(outside, []);
  });

  it('webhooks/signature.ts is the client’s code, not a copy', () => {
    assert.equal(serverSignature.sign, clientSignature.sign);
    assert.equal(serverSignature.verify, clientSignature.verify);
    assert.equal(serverSignature.WebhookSignatureError, clientSignature.WebhookSignatureError);
  });
});
