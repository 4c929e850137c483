// The real activities, wired to the FPS endpoint and credentials from config.
import { config } from '../config';
import { createLogger } from '../config/logger';
import { FpsClient } from '../fps/client';
import { createFpsActivities, type FpsActivities } from './fps-activities';

export * from './fps-activities';

/** Activities backed by an FpsClient on config().fps (the sandbox by default). */
export function createActivities(): FpsActivities {
  const { endpoint, accessKeyId, secretKey, timeoutMs } = config().fps;
  const gateway = new FpsClient({ endpoint, accessKeyId, secretKey, timeoutMs });
  return createFpsActivities(gateway, { logger: createLogger('activities') });
}
