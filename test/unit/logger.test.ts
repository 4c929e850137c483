// config/logger.ts writes stdout asynchronously; these run a real child process and read what it
// printed: nothing logged just before an exit may be lost, and secrets stay redacted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

function run(script: string): { status: number | null; lines: Array<Record<string, unknown>> } {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'info', OTEL_EXPORTER_OTLP_ENDPOINT: '' },
    timeout: 30_000,
  });
  const lines = child.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: child.status, lines };
}

describe('config/logger: the asynchronous stdout destination', () => {
  it('a burst of lines and a fatal line right before process.exit(1) all reach stdout, in order', () => {
    const { status, lines } = run(`
      const { createLogger } = require('./config/logger');
      const log = createLogger('probe');
      for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
      log.fatal({ secretKey: 'shh' }, 'dying');
      process.exit(1);
    `);
    assert.equal(status, 1);
    assert.equal(lines.length, 2001);
    assert.deepEqual(
      lines.slice(0, 2000).map((l) => l.i),
      Array.from({ length: 2000 }, (_, i) => i),
    );
    const last = lines[2000];
    assert.equal(last.msg, 'dying');
    assert.equal(last.level, 'fatal');
    assert.equal(last.service, 'probe');
    assert.equal(last.secretKey, '[redacted]');
  });

  it('two loggers of one process share the destination and keep their service names', () => {
    const { status, lines } = run(`
      const { createLogger } = require('./config/logger');
      createLogger('api').info('a');
      createLogger('worker').warn('b');
    `);
    assert.equal(status, 0);
    assert.deepEqual(
      lines.map((l) => [l.service, l.level, l.msg]),
      [
        ['api', 'info', 'a'],
        ['worker', 'warn', 'b'],
      ],
    );
  });
});
