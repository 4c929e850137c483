// A throwaway FPS sandbox process for benchmarks: loopback, free port, temp data dir, IPNs and
// faults off, its log lines read and dropped (it still pays for writing them, as in production).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config } from '../../config';
import { spawnChild, tsxCommand } from '../../scripts/lib/children';
import { freePort } from '../../scripts/lib/ports';
import { waitForHttpOk } from '../../scripts/lib/wait';

export interface SandboxProcess {
  /** http://127.0.0.1:<port> */
  url: string;
  /** SIGTERM (SIGKILL after 5 s), then removes the data dir. */
  stop(): Promise<void>;
}

export async function startSandboxProcess(env: Record<string, string> = {}): Promise<SandboxProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fps-sandbox-bench-'));
  const { command, args } = tsxCommand(path.join(config().root, 'sandbox/main.ts'));
  const child = spawnChild({
    name: 'sandbox',
    command,
    args,
    cwd: config().root,
    env: {
      ...process.env,
      SANDBOX_PORT: String(port),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: url,
      SANDBOX_DATA_DIR: dataDir,
      SANDBOX_IPN_URL: '',
      SANDBOX_FAULTS: '',
      ...env,
    },
    onLine: () => {},
  });
  await waitForHttpOk(`${url}/healthz`, { timeoutMs: 30_000, child });
  return {
    url,
    async stop() {
      await child.stop('SIGTERM', 5_000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
