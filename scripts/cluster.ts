// `npm run start:cluster`: the production topology on this machine, no Docker — PostgreSQL, the
// Temporal server on it (4 history shards, SQL visibility) with its Web UI, the FPS sandbox, two
// workers and two API processes (scripts/lib/cluster.ts). State is kept in CLUSTER_DATA_DIR
// (.data/cluster). The first start builds the Temporal server, its schema tool and the UI server
// with `go install` (minutes, once). Ctrl-C stops everything, workers and APIs first; if any part
// dies unexpectedly the rest is stopped and the exit code is non-zero.
import { config } from '../config';
import { describeExit } from './lib/children';
import { startCluster, type Cluster } from './lib/cluster';
import { makePrinter } from './lib/log-format';

const cfg = config();
const print = makePrinter({
  colour: Boolean(process.stdout.isTTY),
  names: ['postgres', 'temporal', 'temporal-ui', 'sandbox', 'worker-1', 'worker-2', 'api-1', 'api-2', 'cluster'],
});
const say = (message: string) => print('cluster', message);

let cluster: Cluster | undefined;
let shuttingDown = false;

async function shutdown(code: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    say('stopping…');
    await cluster?.stop();
    say('stopped');
  }
  process.exit(code);
}

function printBox(rows: Array<[string, string]>): void {
  const label = Math.max(...rows.map(([l]) => l.length));
  const lines = rows.map(([l, v]) => `${l.padEnd(label)}  ${v}`);
  const width = Math.max(...lines.map((l) => l.length));
  process.stdout.write(
    `\n┌${'─'.repeat(width + 2)}┐\n${lines.map((l) => `│ ${l.padEnd(width)} │`).join('\n')}\n└${'─'.repeat(width + 2)}┘\n\n`,
  );
}

async function main(): Promise<void> {
  let interrupts = 0;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts === 1) return void shutdown(0);
    // An impatient second Ctrl-C: the exit hook of scripts/lib/children.ts SIGKILLs what is left.
    say('killing everything');
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  // The server's info lines and PostgreSQL's checkpoints are noise at a terminal; warnings show.
  const quiet = (name: string, line: string) =>
    (name === 'postgres' && !/ERROR|FATAL|PANIC/.test(line)) || (name === 'temporal-ui' && !/error/i.test(line));
  cluster = await startCluster({
    dataDir: cfg.cluster.dataDir,
    ports: 'standard',
    detached: true,
    progress: say,
    onLine: (name, line) => {
      if (!shuttingDown && !quiet(name, line)) print(name, line);
    },
    onUnexpectedExit: (name, info) => {
      if (shuttingDown) return;
      say(`${name} exited unexpectedly (${describeExit(info)}); stopping the rest`);
      void shutdown(1);
    },
  });
  void cluster.temporal.child.exited.then((info) => {
    if (shuttingDown) return;
    say(`the Temporal server exited unexpectedly (${describeExit(info)}); stopping the rest`);
    void shutdown(1);
  });

  printBox([
    ['Storefront / API 1', `${cluster.apiUrls[0]}/`],
    ...cluster.apiUrls.slice(1).map((url, i): [string, string] => [`API ${i + 2}`, `${url}/`]),
    ['API key', cluster.apiKey === 'dev-merchant-api-key' ? cluster.apiKey : '(API_KEYS)'],
    ['Temporal gRPC', `${cluster.address} (namespace ${cluster.namespace})`],
    ['Temporal Web UI', cluster.ui ? cluster.uiUrl : (cluster.uiProblem ?? 'not started')],
    ['FPS sandbox', `${cluster.sandboxUrl}  (ledger: ${cluster.sandboxUrl}/admin)`],
    ['PostgreSQL', cluster.postgres.url()],
    ['Ledger store', cluster.ledgerUrl],
    ['Workers', cluster.workers.map((w) => `${w.name} (pid ${w.pid})`).join(', ')],
    ['Data', cluster.dataDir],
  ]);
  say('ready; Ctrl-C to stop');
}

main().catch((err: unknown) => {
  if (shuttingDown) return;
  say(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
