// The real activities, wired to the FPS endpoint and credentials from config.
import { config } from '../config';
import { createLogger } from '../config/logger';
import { FpsClient } from '../fps/client';
import type { LedgerStore } from '../store/ledger';
import { createFpsActivities, type FpsActivities } from './fps-activities';
import type { RecordActivities } from './record-contract';
import { createRecordActivities, unrecordedActivities, withRecord } from './record-activities';

export * from './fps-activities';
export type * from './record-contract';

/** Activities backed by an FpsClient on config().fps (the sandbox by default), recorded in `ledger` when given. */
export function createActivities(ledger?: LedgerStore): FpsActivities & RecordActivities {
  const { endpoint, accessKeyId, secretKey, timeoutMs } = config().fps;
  const gateway = new FpsClient({ endpoint, accessKeyId, secretKey, timeoutMs });
  const logger = createLogger('activities');
  const fps = createFpsActivities(gateway, { logger });
  if (!ledger) return { ...fps, ...unrecordedActivities };
  return { ...withRecord(fps, ledger), ...createRecordActivities(ledger) };
}
