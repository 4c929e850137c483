// Runs INSIDE the SDK's workflow worker thread (bench/lib/sdk-ab/install.ts makes the thread load
// this file before the SDK's workflow-worker-thread.js). Plain CommonJS: the thread must not depend
// on a TypeScript loader. Benchmark-only (issue 16), never shipped.
//   SDK_AB_VARIANT  watchdog-off | stacks-off | both-off
//   SDK_AB_COUNTS   a file this thread rewrites with its counters (the proof that the patch acts)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { threadId } = require('node:worker_threads');

function install(sdkThreadFile) {
  const variant = process.env.SDK_AB_VARIANT || '';
  const counts = {
    variant,
    threadId,
    // vm.Script#runInContext calls that carried a timeout (each one a watchdog thread in Node)
    timedCalls: 0,
    // ... of which this patch removed the timeout
    timeoutsDropped: 0,
    untimedCalls: 0,
    // the SDK's promise-hook installation, replaced by a no-op (0 or 1)
    promiseHookSkipped: 0,
    // promises the SDK's hook saw created in workflow context (each one a captured stack trace)
    promisesCaptured: 0,
  };
  const dropTimeout = variant === 'watchdog-off' || variant === 'both-off';
  const skipStacks = variant === 'stacks-off' || variant === 'both-off';

  // The SDK enters the workflow context with callIntoVmScript.runInContext(context, { timeout }).
  const original = vm.Script.prototype.runInContext;
  vm.Script.prototype.runInContext = function runInContext(context, options) {
    if (options && options.timeout !== undefined) {
      counts.timedCalls++;
      if (dropTimeout) {
        counts.timeoutsDropped++;
        const { timeout: _timeout, ...rest } = options;
        return original.call(this, context, rest);
      }
    } else counts.untimedCalls++;
    return original.call(this, context, options);
  };

  // The SDK's own fallback when v8.promiseHooks is missing: no hook, promiseHookInstalled stays
  // false, so workflows start with stackTracesEnabled: false (the __stack_trace query then fails).
  if (skipStacks) {
    const shared = require(path.join(path.dirname(sdkThreadFile), 'vm-shared.js'));
    shared.globalHandlers.setPromiseHook = function setPromiseHook() {
      counts.promiseHookSkipped++;
    };
  }

  // Counts the promises whose stack the SDK's hook captures: those it tags with their workflow's
  // runId (promises created in workflow context; the hook, when installed, runs as before).
  const { promiseHooks } = require('node:v8');
  const createHook = promiseHooks.createHook;
  promiseHooks.createHook = function countingCreateHook(hooks) {
    const init = hooks.init;
    if (!init) return createHook.call(this, hooks);
    return createHook.call(this, {
      ...hooks,
      init(promise, parent) {
        init(promise, parent);
        if (promise.runId !== undefined) counts.promisesCaptured++;
      },
    });
  };

  const file = process.env.SDK_AB_COUNTS;
  if (file) {
    const write = () => {
      try {
        fs.writeFileSync(file, JSON.stringify(counts));
      } catch {
        // the benchmark's temp dir is gone
      }
    };
    write();
    setInterval(write, 250).unref();
  }
}

module.exports = { install };
