// boto 2.49's boto.fps (an FPS client nobody here wrote) against a real sandbox process: CBUI,
// FundPrepaid, Pay, replay, status, refund, balances, tokens and an FPS error, all parsed by boto.
// Needs a Python 3 with boto 2.49 (Debian: `apt-get install python3-boto`; .ci/run installs it).
// Required under CI=true; on a developer machine without boto it is skipped with that reason.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { startSandbox, type TestSandbox } from './support';

/** A python3 that can import boto.fps, if any. */
function pythonWithBoto(): string | undefined {
  return ['python3', '/usr/bin/python3'].find(
    (python) => spawnSync(python, ['-c', 'import boto.fps.connection'], { stdio: 'ignore' }).status === 0,
  );
}

describe('sandbox with boto.fps as the client (real process)', function () {
  this.timeout(30_000);
  const python = pythonWithBoto();
  let sb: TestSandbox;

  before(async function () {
    if (!python) {
      if (process.env.CI === 'true')
        throw new Error('python3 with boto is required in CI (apt-get install python3-boto)');
      this.skip();
    }
    sb = await startSandbox({ name: 'boto' });
  });
  after(async () => sb?.stop());

  it('runs a prepaid merchant session signed, sent and parsed by boto', async () => {
    const { stdout } = await promisify(execFile)(python!, [
      path.join(__dirname, 'boto', 'fps_session.py'),
      sb.url,
      DEV_ACCESS_KEY_ID,
      DEV_SECRET_KEY,
    ]);
    assert.deepEqual(JSON.parse(stdout), {
      cbuiStatus: 'SC',
      fund: 'Success',
      pay: 'Success',
      replaySameId: true,
      status: 'Success',
      refund: 'Success',
      availableBalance: '40.00',
      token: 'PrepaidSender Active',
      outstandingDebt: '0.00',
      tooMuch: 'InsufficientBalance',
    });
  });
});
