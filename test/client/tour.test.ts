// The README's client tour, run as written: the block between the client-tour markers is written to
// a file with only its package import pointed at client/, run as its own process against the test
// stack, and approved at the sandbox CBUI when it prints the authorization URL, as a buyer would.
// Then what it printed, and the instrument's events and record, are checked.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config } from '../../config';
import { call, cbuiDecision, getStack, type Stack } from '../api/stack';

const root = config().root;

/** The TypeScript block of README.md between <!-- client-tour:start --> and <!-- client-tour:end -->. */
function tourSource(readme: string): string {
  const block = /<!-- client-tour:start -->\s*```ts\n([\s\S]*?)```\s*<!-- client-tour:end -->/.exec(readme);
  if (!block) throw new Error('README.md has no client tour block');
  return block[1];
}

describe('client: the README tour', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await getStack();
  });

  it('runs as written: approved, balance.low once, one auto top-up, declined .51, refund, the event log', async () => {
    const source = tourSource(readFileSync(path.join(root, 'README.md'), 'utf8'));
    assert.match(source, /from '@fps-temporal\/client'/);
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'client-tour-')), 'tour.ts');
    writeFileSync(file, source.replace("'@fps-temporal/client'", JSON.stringify(path.join(root, 'client'))));
    const customerId = `tour-${process.pid}-${Date.now().toString(36)}`;

    const child = spawn(process.execPath, ['--require', 'tsx/cjs', file], {
      cwd: root,
      env: { ...process.env, FPS_API_URL: stack.apiUrl, FPS_API_KEY: stack.apiKey, TOUR_CUSTOMER: customerId },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let approving: Promise<void> | undefined;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const url = /send the buyer to (\S+)/.exec(stdout)?.[1];
      if (url && !approving) {
        approving = (async () => {
          const returned = await fetch(await cbuiDecision(url, 'approve'), { redirect: 'manual' });
          assert.equal(returned.status, 303);
        })();
      }
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('exit', (exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
    await approving;
    assert.equal(code, 0, `tour exited ${code}\n${stdout}\n${stderr}`);

    const lines = stdout.trim().split('\n');
    assert.ok(lines.includes('order-1001 approved'), stdout);
    assert.ok(lines.includes('order-1003 declined TransactionDenied'), stdout);
    // 20.00 - 16.50 - 1.00 + 10.00 (the top-up: 17.50 of room) + 1.50 refunded
    assert.ok(lines.includes('balance 14.00'), stdout);
    const events = lines.filter((l) => l.startsWith('event ')).map((l) => l.split(' '));
    assert.deepEqual(
      events.map(([, sequence]) => Number(sequence)),
      events.map((_, i) => i + 1),
      'every event of the instrument, in sequence',
    );
    const types = events.map(([, , type]) => type);
    const count = (type: string) => types.filter((t) => t === type).length;
    assert.equal(count('instrument.authorized'), 1);
    assert.equal(count('instrument.activated'), 1);
    assert.equal(count('balance.low'), 1);
    assert.equal(count('funding.succeeded'), 2, 'the initial funding and one top-up');
    assert.equal(count('purchase.approved'), 2);
    assert.equal(count('purchase.declined'), 1);
    assert.equal(count('refund.succeeded'), 1);

    // The record agrees: the top-up is the workflow's own operation wf:auto-1, 10.00.
    const instrumentId = /^(\S+): send the buyer to /m.exec(stdout)?.[1];
    assert.ok(instrumentId, stdout);
    const funds = await call(stack, 'GET', `/instruments/${instrumentId}/transactions?operation=fund`);
    assert.deepEqual(
      (funds.body.data as Array<{ id: string; amount: { amount: string } }>).map((r) => [r.id, r.amount.amount]).sort(),
      [
        ['wf:auto-1', '10.00'],
        ['wf:initial', '20.00'],
      ],
    );
  });
});
