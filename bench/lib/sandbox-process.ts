// A throwaway FPS sandbox process for benchmarks: loopback, free port, temp data dir, IPNs and
// faults off, its log lines written to a file (it still pays for writing them, as in production).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/lib/ports';
import { resultsDir } from './common';
import { httpOk, startProcess, waitFor } from './processes';

export interface SandboxProcess {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The sandbox process (for /proc readings). */
  pid: number;
  /** SIGTERM (SIGKILL after 5 s), then removes the data dir. */
  stop(): Promise<void>;
}

export async function startSandboxProcess(env: Record<string, string> = {}): Promise<SandboxProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fps-sandbox-bench-'));
  const child = startProcess({
    name: 'sandbox',
    script: 'sandbox/main.ts',
    logFile: path.join(resultsDir(), 'logs', 'sandbox-bench.log'),
    env: {
      SANDBOX_PORT: String(port),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: url,
      SANDBOX_DATA_DIR: dataDir,
      SANDBOX_IPN_URL: '',
      SANDBOX_FAULTS: '',
      ...env,
    },
  });
  try {
    await waitFor('sandbox', () => httpOk(`${url}/healthz`), 30_000, child);
  } catch (err) {
    await child.stop(5_000);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      await child.stop(5_000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
