import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { callerReferenceFor, sha256Hex } from '../../fps/caller-reference';

describe('fps/caller-reference', () => {
  it('is the readable business-id form when short', () => {
    assert.equal(callerReferenceFor('inst-42', 'pay', 'order-1001'), 'inst-42:pay:order-1001');
    assert.equal(callerReferenceFor('inst-42', 'fund', 3), 'inst-42:fund:3');
    assert.equal(callerReferenceFor('inst-42', 'writeoff'), 'inst-42:writeoff');
  });

  it('is deterministic, at most 128 characters, and distinct for long ids', () => {
    const long = 'x'.repeat(200);
    const a = callerReferenceFor('inst-42', 'pay', long);
    const b = callerReferenceFor('inst-42', 'pay', `${long}y`);
    assert.equal(a, callerReferenceFor('inst-42', 'pay', long));
    assert.ok(a.length <= 128 && b.length <= 128);
    assert.notEqual(a, b);
    assert.ok(a.startsWith('inst-42:pay:h'));
  });

  it('rejects empty business ids', () => {
    assert.throws(() => callerReferenceFor('', 'pay', 'p'));
    assert.throws(() => callerReferenceFor('i', 'pay', ''));
  });

  it('uses a SHA-256 that agrees with node:crypto (unicode, block boundaries)', () => {
    for (const text of ['', 'abc', 'é€😀', 'a'.repeat(55), 'a'.repeat(56), 'a'.repeat(64), 'b'.repeat(1000)]) {
      assert.equal(
        sha256Hex(text),
        createHash('sha256').update(text, 'utf8').digest('hex'),
        `for ${text.length} chars`,
      );
    }
  });
});
