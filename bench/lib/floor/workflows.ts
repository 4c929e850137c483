// The Temporal floor for the latency benchmark's decomposition: the cheapest Update there is (a
// handler that returns at once), and the same with one no-op local activity — the shape of a
// purchase without the instrument's logic and without the FPS call.
import { condition, defineUpdate, proxyLocalActivities, setHandler } from '@temporalio/workflow';

export const noopUpdate = defineUpdate<number, [number]>('noop');
export const localActivityUpdate = defineUpdate<number, [number]>('localActivity');

const { nothing } = proxyLocalActivities<{ nothing(): Promise<void> }>({ startToCloseTimeout: '10s' });

export async function floorWorkflow(): Promise<void> {
  let done = false;
  setHandler(noopUpdate, (n) => n);
  setHandler(localActivityUpdate, async (n) => {
    await nothing();
    return n;
  });
  setHandler(defineUpdate<void>('stop'), () => void (done = true));
  await condition(() => done);
}
