// Instrument settings with their defaults: long real-world timers, overridable per instrument
// (tests use milliseconds).
import type { InstrumentSettings } from './messages';

const DAY = 24 * 60 * 60 * 1000;

export type ResolvedSettings = Required<Omit<InstrumentSettings, 'expiresAt'>> & { expiresAt: number | undefined };

export const DEFAULT_SETTINGS: ResolvedSettings = {
  settlementCycleMs: 30 * DAY,
  settlementThresholdPercent: 80,
  settlementRetryLimit: 3,
  settlementRetryIntervalMs: DAY,
  writeOffGraceMs: 60 * DAY,
  expiresAt: undefined,
  pollInitialMs: 5_000,
  maxPollIntervalMs: 10 * 60 * 1000,
  continueAsNewAfterEvents: 5_000,
  processedIdLimit: 3_000,
  closedRetentionMs: 7 * DAY,
  fpsCallAttempts: 5,
  fpsRetryInitialMs: 200,
};

export function resolveSettings(settings: InstrumentSettings | undefined): ResolvedSettings {
  const resolved: ResolvedSettings = { ...DEFAULT_SETTINGS };
  for (const [key, value] of Object.entries(settings ?? {})) {
    if (value !== undefined && value !== null) (resolved as unknown as Record<string, unknown>)[key] = value;
  }
  return resolved;
}
