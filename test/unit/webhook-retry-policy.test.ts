// The retry schedule: about initialMs first, doubling, capped, jittered ±25%, none after the window.
import assert from 'node:assert/strict';
import { EVENT_TYPES } from '../../store/event-types';
import { moneyEventType } from '../../store/operation-events';
import { nextStep, retryDelayMs } from '../../webhooks/retry-policy';

const defaults = { initialMs: 1_000, maxMs: 3_600_000, windowMs: 3 * 86_400_000 };

describe('webhook retry policy', () => {
  it('first retry after about 1 s, doubling, capped at 1 h', () => {
    const mid = () => 0.5; // no jitter
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => retryDelayMs(n, defaults, mid)),
      [1_000, 2_000, 4_000, 8_000, 16_000],
    );
    assert.equal(retryDelayMs(12, defaults, mid), 2_048_000);
    assert.equal(retryDelayMs(13, defaults, mid), 3_600_000);
    assert.equal(retryDelayMs(1_000, defaults, mid), 3_600_000);
  });

  it('jitter stays within ±25% and under the cap', () => {
    assert.equal(
      retryDelayMs(1, defaults, () => 0),
      750,
    );
    assert.equal(
      retryDelayMs(1, defaults, () => 0.999999),
      1_250,
    );
    assert.equal(
      retryDelayMs(20, defaults, () => 0.999999),
      3_600_000,
    );
    assert.equal(
      retryDelayMs(20, defaults, () => 0),
      2_700_000,
    );
  });

  it('about 3 days of retries: ~85 attempts, then failed', () => {
    let now = 0;
    let attempts = 1;
    for (;;) {
      const step = nextStep(attempts, 0, now, defaults, () => 0.5);
      if (step.status === 'failed') break;
      now = step.at;
      attempts++;
    }
    assert.ok(now <= defaults.windowMs && now > defaults.windowMs - 3_600_000, `last attempt at ${now}`);
    assert.ok(attempts > 70 && attempts < 90, `${attempts} attempts`);
  });

  it('every money event type the record emits is a known event type', () => {
    const operations = ['purchase', 'reserve', 'refund', 'fund', 'settle', 'writeOff', 'capture', 'void'];
    const statuses = ['Pending', 'Reserved', 'Success', 'Failure', 'Declined', 'Cancelled'];
    for (const op of operations)
      for (const status of statuses) {
        const type = moneyEventType(op, status);
        if (type) assert.ok((EVENT_TYPES as readonly string[]).includes(type), `${op}/${status} → ${type}`);
      }
  });
});
