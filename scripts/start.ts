// `npm start`: the whole system on one machine — Temporal dev server (with Web UI), FPS sandbox,
// worker and API — each a child process with prefixed, readable logs. Ctrl-C stops everything
// in reverse order; if any part dies, the rest is stopped and the exit code is non-zero.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { config } from '../config';
import { describeExit, spawnChild, tsxCommand, type ExitInfo, type ManagedChild } from './lib/children';
import { makePrinter } from './lib/log-format';
import { assertPortFree } from './lib/ports';
import { waitForHttpOk } from './lib/wait';
import { ensureTemporalCli, startDevServer } from './temporal-cli';

const cfg = config();
const print = makePrinter({
  colour: Boolean(process.stdout.isTTY),
  names: ['temporal', 'sandbox', 'worker', 'api', 'start'],
});
const say = (message: string) => print('start', message);

interface Part {
  name: string;
  stop(): Promise<unknown>;
  kill(): void;
  exited: Promise<ExitInfo>;
}

/** Started parts, in start order; stopped in reverse. */
const parts: Part[] = [];
let shuttingDown = false;

async function shutdown(code: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    say('stopping…');
    // pop() rather than a snapshot: a part still starting when this began is stopped too.
    for (let part = parts.pop(); part; part = parts.pop()) {
      await part.stop();
      say(`${part.name} stopped`);
    }
  }
  process.exit(code);
}

function watch(part: Part): void {
  parts.push(part);
  void part.exited.then((info) => {
    if (shuttingDown) return;
    say(`${part.name} exited unexpectedly (${describeExit(info)}); stopping the rest`);
    void shutdown(1);
  });
}

/** A listen address as a URL a client can use (0.0.0.0 is not something to connect to). */
function localUrl(host: string, port: number): string {
  return `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`;
}

async function startTemporal(): Promise<Record<string, string>> {
  const { temporal } = cfg;
  if (temporal.address) {
    say(`using the Temporal server at ${temporal.address} (TEMPORAL_ADDRESS)`);
    return {};
  }
  const cliPath = await ensureTemporalCli(say);
  mkdirSync(path.dirname(temporal.dbFile), { recursive: true });
  const server = await startDevServer({
    cliPath,
    port: temporal.devPort,
    uiPort: temporal.uiPort,
    dbFile: temporal.dbFile,
    namespace: temporal.namespace,
    onLine: (line) => print('temporal', line),
    // Own process group: Ctrl-C reaches only us, so the server stops last, after the worker.
    detached: true,
  });
  watch({ name: 'temporal', stop: server.stop, kill: () => void server.child.kill9(), exited: server.child.exited });
  say(`Temporal dev server ready in ${server.startupMs} ms (${temporal.dbFile})`);
  return { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace };
}

interface ServiceSpec {
  name: string;
  script: string;
  /** Ready when GET answers 200... */
  healthUrl?: string;
  /** ...or when an output line contains this. */
  readyLine?: string;
  /** Checked before starting: otherwise the health check could be answered by whatever holds it. */
  port?: { host: string; port: number; variable: string };
  graceMs: number;
}

async function startService(spec: ServiceSpec, env: NodeJS.ProcessEnv): Promise<void> {
  const script = path.join(cfg.root, spec.script);
  if (!existsSync(script)) throw new Error(`${spec.script} does not exist yet`);
  if (spec.port) {
    await assertPortFree(spec.port.port, spec.port.host, spec.name, `set ${spec.port.variable} to use another port`);
  }
  if (shuttingDown) return; // another part failed while we checked the port
  const { command, args } = tsxCommand(script);
  const child: ManagedChild = spawnChild({
    name: spec.name,
    command,
    args,
    env,
    cwd: cfg.root,
    detached: true,
    onLine: (line) => print(spec.name, line),
  });
  watch({
    name: spec.name,
    stop: () => child.stop('SIGTERM', spec.graceMs),
    kill: () => void child.kill9(),
    exited: child.exited,
  });
  if (spec.healthUrl) await waitForHttpOk(spec.healthUrl, { child, timeoutMs: 60_000 });
  // The worker bundles the workflow code before it polls: allow for a slow first start.
  if (spec.readyLine) await child.waitForLine(spec.readyLine, 120_000);
}

function printBox(rows: Array<[string, string]>): void {
  const label = Math.max(...rows.map(([l]) => l.length));
  const lines = rows.map(([l, v]) => `${l.padEnd(label)}  ${v}`);
  const width = Math.max(...lines.map((l) => l.length));
  const out = [
    `┌${'─'.repeat(width + 2)}┐`,
    ...lines.map((l) => `│ ${l.padEnd(width)} │`),
    `└${'─'.repeat(width + 2)}┘`,
  ];
  process.stdout.write(`\n${out.join('\n')}\n\n`);
}

async function main(): Promise<void> {
  let interrupts = 0;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts === 1) {
      void shutdown(0);
      return;
    }
    // Impatient second Ctrl-C: no more waiting.
    say('killing everything');
    for (const part of parts) part.kill();
    // (the 'exit' hook in lib/children.ts also SIGKILLs anything still running)
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const temporalEnv = await startTemporal();
  const env: NodeJS.ProcessEnv = { ...process.env, ...temporalEnv };

  const { sandbox, api } = cfg;
  await startService(
    {
      name: 'sandbox',
      script: 'sandbox/main.ts',
      healthUrl: `${localUrl(sandbox.host, sandbox.port)}/healthz`,
      port: { host: sandbox.host, port: sandbox.port, variable: 'SANDBOX_PORT' },
      graceMs: 5_000,
    },
    env,
  );
  // Both need only Temporal and the sandbox: start them side by side.
  await Promise.all([
    startService({ name: 'worker', script: 'worker/main.ts', readyLine: 'worker started', graceMs: 10_000 }, env),
    startService(
      {
        name: 'api',
        script: 'api/main.ts',
        healthUrl: `${localUrl(api.host, api.port)}/healthz`,
        port: { host: api.host, port: api.port, variable: 'API_PORT' },
        graceMs: 5_000,
      },
      env,
    ),
  ]);

  printBox([
    ['Storefront', `${api.publicUrl}/`],
    ['API', `${api.publicUrl}/`],
    ['Temporal Web UI', cfg.temporal.uiUrl],
    ['FPS sandbox', sandbox.publicUrl],
    ['Sandbox ledger', `${sandbox.publicUrl}/admin`],
  ]);
  say('ready; Ctrl-C to stop');
}

main().catch((err: unknown) => {
  if (shuttingDown) return;
  say(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
