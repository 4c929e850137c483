// The watchdog cost on its own (issue 16): Node implements vm's `timeout` option by starting a
// watchdog thread for the call and joining it afterwards, on every call. The same one-expression
// script, run in a context N times with and without { timeout }, in alternating blocks.
//   npx tsx bench/lib/sdk-ab/vm-timeout.ts [calls per block, default 20000]
import vm from 'node:vm';

const n = Number(process.argv[2] ?? 20_000);
const context = vm.createContext({ x: 0 }, { microtaskMode: 'afterEvaluate' }); // as the SDK's
const script = new vm.Script('x++'); // as the SDK's __TEMPORAL_CALL_INTO_SCOPE(): one short call
const block = (options: vm.RunningScriptOptions) => {
  const [wall, cpu] = [performance.now(), process.cpuUsage()];
  for (let i = 0; i < n; i++) script.runInContext(context, options);
  const used = process.cpuUsage(cpu);
  return { wallUs: ((performance.now() - wall) * 1000) / n, cpuUs: (used.user + used.system) / n };
};
const rows: Record<string, { wallUs: number[]; cpuUs: number[] }> = {
  none: { wallUs: [], cpuUs: [] },
  '5s': { wallUs: [], cpuUs: [] },
};
for (let round = 0; round < 6; round++)
  for (const [name, options] of [
    ['none', {}],
    ['5s', { timeout: 5_000 }],
  ] as const) {
    const r = block(options);
    if (round === 0) continue; // warm-up
    rows[name].wallUs.push(r.wallUs);
    rows[name].cpuUs.push(r.cpuUs);
  }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [name, r] of Object.entries(rows))
  console.log(
    `timeout ${name.padEnd(4)} µs per call: wall ${median(r.wallUs).toFixed(2)}, CPU ${median(r.cpuUs).toFixed(2)}`,
  );
console.log(`(${n} calls per block, 5 blocks each after a warm-up, medians; Node ${process.version})`);
