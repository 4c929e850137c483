// Replays the committed histories of the lifecycle tests against the current workflow code: an
// incompatible (non-deterministic) change fails here before it can break running instruments.
// New histories are written by the lifecycle tests when missing (UPDATE_HISTORIES=1 rewrites them).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { PRELOADED_WORKFLOW_MODULES, WORKFLOWS_PATH } from '../../worker/create-worker';
import { bundleTestWorkflows, testNativeConnection } from '../support/temporal';
import { HISTORIES_DIR, readHistory } from './instrument-env';

describe('replay of saved instrument histories', function () {
  this.timeout(120_000);

  it('every history in test/workflow/histories replays without nondeterminism', async () => {
    const files = readdirSync(HISTORIES_DIR)
      .filter((f) => f.endsWith('.json'))
      .sort();
    assert.ok(files.length >= 5, `expected the lifecycle histories, found ${files.length}`);
    await testNativeConnection(); // installs the test Runtime (quiet logger) before the replay worker
    const workflowBundle = await bundleTestWorkflows(WORKFLOWS_PATH, PRELOADED_WORKFLOW_MODULES);
    const histories = files.map((file) => ({
      workflowId: path.basename(file, '.json'),
      history: readHistory(path.join(HISTORIES_DIR, file)),
    }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.equal(replayed, files.length);
    assert.deepEqual(failures, []);
  });
});
