// Runs a model property with fast-check: MODEL_RUNS runs of up to MODEL_COMMANDS commands from
// MODEL_SEED; with MODEL_TARGET (the long run, npm run test:model:long) it goes on with the next
// seeds until at least that many API commands ran, printing progress and each seed (a failure's
// seed and path replay it: MODEL_SEED=… npm run test:model). MODEL_SHRINK=false stops at the first
// failure without shrinking (the long run does: shrinking 150 real commands takes many minutes;
// replaying its seed with npm run test:model shrinks it).
import fc from 'fast-check';

export const SEED = process.env.MODEL_SEED ? Number(process.env.MODEL_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
export const TARGET = Number(process.env.MODEL_TARGET ?? 0);

export interface RunCounts {
  /** API commands the property sent (each suite counts its own). */
  commands: number;
}

export async function runModel<Ts extends unknown[]>(
  label: string,
  options: { runs: number; commands: number },
  property: (counts: RunCounts) => fc.IAsyncPropertyWithHooks<Ts>,
): Promise<{ commands: number; seconds: number; seeds: number[] }> {
  const counts: RunCounts = { commands: 0 };
  const started = Date.now();
  const seeds: number[] = [];
  const say = (text: string) => process.stdout.write(`    [model] ${label}: ${text}\n`);
  say(
    `seed ${SEED}, ${options.runs} runs of up to ${options.commands} commands` +
      `${TARGET ? `, until ${TARGET} API commands` : ''} (MODEL_SEED=${SEED} replays)`,
  );
  for (let round = 0; round === 0 || counts.commands < TARGET; round++) {
    const seed = SEED + round;
    seeds.push(seed);
    await fc.assert(property(counts), {
      seed,
      numRuns: options.runs,
      endOnFailure: process.env.MODEL_SHRINK === 'false',
    });
    if (TARGET) {
      const seconds = (Date.now() - started) / 1000;
      say(
        `round ${round + 1} (seed ${seed}) done: ${counts.commands}/${TARGET} commands, ${seconds.toFixed(0)} s, ` +
          `${(counts.commands / seconds).toFixed(1)} commands/s`,
      );
    }
  }
  const seconds = (Date.now() - started) / 1000;
  say(
    `${counts.commands} API commands in ${seconds.toFixed(1)} s: ${(counts.commands / seconds).toFixed(1)} commands/s`,
  );
  return { commands: counts.commands, seconds, seeds };
}
