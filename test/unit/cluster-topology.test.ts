// `npm run start:cluster` (scripts/lib/cluster.ts) and docker-compose.yml describe one topology:
// the same app services running the same npm scripts with the same environment variables, the
// same ports, the same Temporal server version and persistence plugin, the same search attributes
// and the same ledger database. Only values that name places differ (127.0.0.1 vs container names).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../scripts/lib/dev-server';
import { defaultPlanInput, LEDGER_DATABASE, planServices, type ServicePlan } from '../../scripts/lib/cluster';
import { NUM_HISTORY_SHARDS, TEMPORAL_SERVER_VERSION } from '../../scripts/lib/temporal-server';

const root = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
}
const services = (parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> }).services;
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
const appNames = Object.keys(services).filter((name) => services[name].build !== undefined);
const plan = planServices(defaultPlanInput());
const replicas = (name: string): ServicePlan[] => plan.filter((p) => p.composeService === name);

/** `${NAME:-default}` → default, as compose resolves it with NAME unset. */
function composeValue(value: string | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return String(value).replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
}

function publishedPort(name: string): number {
  const [mapping] = services[name].ports ?? [];
  return Number(String(mapping).split(':')[0]);
}

const portOf = (url: string) => Number(new URL(url.includes('://') ? url : `http://${url}`).port);

describe('the cluster script and docker-compose.yml: one topology', () => {
  it('runs a replica of every compose app service, and nothing compose does not have', () => {
    assert.deepEqual([...new Set(plan.map((p) => p.composeService))].sort(), [...appNames].sort());
    assert.equal(replicas('sandbox').length, 1);
    assert.ok(replicas('worker').length >= 2, 'two workers (compose: --scale worker=N)');
    assert.ok(replicas('api').length >= 2, 'two API processes');
  });

  it('each replica runs the npm script compose runs, and that script runs the replica entry file', () => {
    for (const p of plan) {
      const command = services[p.composeService].command!;
      assert.deepEqual(command, ['npm', 'run', p.npmScript], `${p.name}: compose runs ${command.join(' ')}`);
      assert.equal(pkg.scripts[p.npmScript], `tsx ${p.script}`, `${p.name}: npm run ${p.npmScript}`);
    }
  });

  it('each replica gets exactly the variables compose sets for its service', () => {
    for (const p of plan) {
      const expected = Object.keys(services[p.composeService].environment ?? {}).sort();
      assert.deepEqual(Object.keys(p.env).sort(), expected, `${p.name} vs compose ${p.composeService}`);
    }
  });

  it('values that do not name a place are the same', () => {
    const placeFree = [
      'LOG_LEVEL',
      'TEMPORAL_NAMESPACE',
      'TEMPORAL_TASK_QUEUE',
      'FPS_ACCESS_KEY_ID',
      'FPS_SECRET_KEY',
      'API_KEYS',
      'SANDBOX_PENDING_DELAY_MS',
    ];
    for (const p of plan) {
      const env = services[p.composeService].environment ?? {};
      for (const name of placeFree.filter((n) => n in env)) {
        assert.equal(p.env[name], composeValue(env[name]), `${p.name}: ${name}`);
      }
    }
  });

  it('ports agree: Temporal frontend, Web UI, sandbox, the first API (the public URL)', () => {
    const sandbox = replicas('sandbox')[0];
    assert.equal(Number(sandbox.env.SANDBOX_PORT), publishedPort('sandbox'));
    assert.equal(
      portOf(sandbox.env.SANDBOX_PUBLIC_URL),
      portOf(String(services.sandbox.environment!.SANDBOX_PUBLIC_URL)),
    );
    const temporalPort = Number(String(services.temporal.ports![0]).split(':')[0]);
    const uiPort = publishedPort('temporal-ui');
    for (const p of plan) {
      assert.equal(portOf(p.env.TEMPORAL_ADDRESS), temporalPort, `${p.name}: TEMPORAL_ADDRESS`);
      assert.equal(portOf(p.env.TEMPORAL_UI_URL), uiPort, `${p.name}: TEMPORAL_UI_URL`);
      assert.equal(portOf(p.env.API_PUBLIC_URL), publishedPort('api'), `${p.name}: API_PUBLIC_URL`);
    }
    const apiPorts = replicas('api').map((p) => Number(p.env.API_PORT));
    assert.equal(apiPorts[0], publishedPort('api'));
    assert.equal(new Set(apiPorts).size, apiPorts.length, 'each API process on its own port');
  });

  it('the API processes share one key set, one storefront session secret and one public URL', () => {
    const apis = replicas('api');
    for (const name of ['API_KEYS', 'STORE_SESSION_SECRET', 'API_PUBLIC_URL', 'LEDGER_DATABASE_URL']) {
      assert.equal(new Set(apis.map((p) => p.env[name])).size, 1, name);
    }
    const sandbox = replicas('sandbox')[0];
    assert.equal(sandbox.env.SANDBOX_IPN_URL, `${apis[0].env.API_PUBLIC_URL}/fps/ipn`);
    assert.equal(
      composeValue(services.sandbox.environment!.SANDBOX_IPN_URL),
      `${composeValue(services.api.environment!.API_PUBLIC_URL)}/fps/ipn`,
    );
  });

  it('workers and APIs keep the ledger in the same PostgreSQL database', () => {
    assert.equal(composeValue(services.postgresql.environment!.POSTGRES_DB), LEDGER_DATABASE);
    for (const name of ['worker', 'api']) {
      const url = new URL(String(composeValue(services[name].environment!.LEDGER_DATABASE_URL)));
      assert.equal(url.protocol, 'postgres:');
      assert.equal(url.pathname, `/${LEDGER_DATABASE}`, `compose ${name}`);
      for (const p of replicas(name)) {
        assert.equal(new URL(p.env.LEDGER_DATABASE_URL).pathname, `/${LEDGER_DATABASE}`, p.name);
      }
    }
  });

  it('the same Temporal server: version, PostgreSQL plugin, shards above 1, search attributes', () => {
    const version = TEMPORAL_SERVER_VERSION.replace(/^v/, '');
    assert.ok(services.temporal.image?.endsWith(`:${version}`), `compose runs ${services.temporal.image}`);
    assert.ok(services['temporal-admin-tools'].image?.includes(`:${version}`));
    assert.equal(services.temporal.environment?.DB, 'postgres12');
    assert.match(read('scripts/lib/temporal-server.ts'), /pluginName: 'postgres12'/);
    assert.ok(NUM_HISTORY_SHARDS > 1);
    const job = JSON.stringify(services['temporal-admin-tools']);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      assert.ok(job.includes(name), `compose registers ${name}`);
      assert.match(job, new RegExp(`--type ${type}`), `compose registers ${name} as ${type}`);
    }
  });
});
