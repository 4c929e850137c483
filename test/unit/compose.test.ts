// docker-compose.yml and the Dockerfile cannot be run here (no Docker daemon in CI), so this checks
// what usually breaks them: commands that name no script, environment variables nobody reads, ports
// that disagree with the configuration, an unscalable worker, missing health checks.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../workflows/messages';

const root = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number>;
  ports?: string[];
  container_name?: string;
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }>;
  networks?: Record<string, { aliases?: string[] }>;
  restart?: string;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
const configSource = read('config/index.ts');
const appServices = Object.entries(services).filter(([, s]) => s.build !== undefined);

/** Variables config/index.ts reads: str('X', …), int('X', …), list('X', …), secret('X', …), process.env.X. */
const configVariables = new Set([
  ...[...configSource.matchAll(/\b(?:str|int|list|secret|bool)\('([A-Z0-9_]+)'/g)].map((m) => m[1]),
  ...[...configSource.matchAll(/process\.env\.([A-Z0-9_]+)/g)].map((m) => m[1]),
]);

/** "3000:3000" → { host: 3000, container: 3000 }. */
function portMappings(service: Service) {
  return (service.ports ?? []).map((p) => {
    const [host, container] = String(p).split(':').slice(-2).map(Number);
    return { host, container };
  });
}

/** The default of an int('NAME', default) in config/index.ts. */
function configDefault(name: string): number {
  const match = new RegExp(`int\\('${name}',\\s*([\\d_]+)\\)`).exec(configSource);
  assert.ok(match, `config/index.ts has no int('${name}', default)`);
  return Number(match[1].replace(/_/g, ''));
}

describe('docker-compose.yml', () => {
  it('describes the whole stack', () => {
    for (const name of ['postgresql', 'temporal', 'temporal-admin-tools', 'temporal-ui', 'sandbox', 'worker', 'api']) {
      assert.ok(services[name], `service ${name} missing`);
    }
    assert.deepEqual(appServices.map(([name]) => name).sort(), ['api', 'sandbox', 'worker']);
  });

  it("each app service's command is an npm script whose entry file exists", () => {
    for (const [name, service] of appServices) {
      const command = service.command;
      assert.ok(Array.isArray(command), `${name}: command must be an exec array`);
      assert.deepEqual(command.slice(0, 2), ['npm', 'run'], `${name}: command must be npm run <script>`);
      const script = pkg.scripts[command[2]];
      assert.ok(script, `${name}: package.json has no script ${command[2]}`);
      const entry = /^tsx\s+(\S+\.ts)\b/.exec(script)?.[1];
      assert.ok(entry, `${name}: script ${command[2]} (${script}) does not run a .ts entry with tsx`);
      assert.ok(existsSync(path.join(root, entry)), `${name}: entry file ${entry} does not exist`);
    }
  });

  it('every environment variable an app service sets is read by config/index.ts', () => {
    for (const [name, service] of appServices) {
      for (const variable of Object.keys(service.environment ?? {})) {
        assert.ok(configVariables.has(variable), `${name}: ${variable} is not read by config/index.ts`);
      }
    }
  });

  it('published ports agree with the configuration', () => {
    const api = services.api;
    const apiPort = Number(api.environment?.API_PORT ?? configDefault('API_PORT'));
    assert.deepEqual(portMappings(api), [{ host: apiPort, container: apiPort }]);
    assert.equal(new URL(String(api.environment?.API_PUBLIC_URL)).port, String(apiPort));

    const sandbox = services.sandbox;
    const sandboxPort = Number(sandbox.environment?.SANDBOX_PORT ?? configDefault('SANDBOX_PORT'));
    assert.deepEqual(portMappings(sandbox), [{ host: sandboxPort, container: sandboxPort }]);
    assert.equal(new URL(String(sandbox.environment?.SANDBOX_PUBLIC_URL)).port, String(sandboxPort));

    const uiPort = configDefault('TEMPORAL_UI_PORT');
    assert.deepEqual(portMappings(services['temporal-ui']), [{ host: uiPort, container: 8080 }]);
    for (const [name, service] of appServices) {
      assert.equal(
        new URL(String(service.environment?.TEMPORAL_UI_URL)).port,
        String(uiPort),
        `${name}: TEMPORAL_UI_URL port`,
      );
    }
    assert.ok(portMappings(services.temporal).some((p) => p.container === configDefault('TEMPORAL_PORT')));
    for (const [name, service] of appServices) {
      assert.equal(
        service.environment?.TEMPORAL_ADDRESS,
        `temporal:${configDefault('TEMPORAL_PORT')}`,
        `${name}: TEMPORAL_ADDRESS`,
      );
    }
  });

  it('public URLs resolve to the right containers, and the sandbox posts IPNs where the API verifies them', () => {
    const apiHost = new URL(String(services.api.environment?.API_PUBLIC_URL)).hostname;
    const sandboxHost = new URL(String(services.sandbox.environment?.SANDBOX_PUBLIC_URL)).hostname;
    assert.ok(services.api.networks?.default?.aliases?.includes(apiHost), `api needs the network alias ${apiHost}`);
    assert.ok(
      services.sandbox.networks?.default?.aliases?.includes(sandboxHost),
      `sandbox needs the network alias ${sandboxHost}`,
    );
    // Browsers resolve *.localhost to loopback, where the ports are published.
    assert.match(apiHost, /\.localhost$/);
    assert.match(sandboxHost, /\.localhost$/);
    for (const [name, service] of appServices) {
      assert.equal(
        service.environment?.API_PUBLIC_URL,
        services.api.environment?.API_PUBLIC_URL,
        `${name}: API_PUBLIC_URL`,
      );
      assert.equal(
        service.environment?.SANDBOX_PUBLIC_URL,
        services.sandbox.environment?.SANDBOX_PUBLIC_URL,
        `${name}: SANDBOX_PUBLIC_URL`,
      );
    }
    assert.equal(services.sandbox.environment?.SANDBOX_IPN_URL, `${services.api.environment?.API_PUBLIC_URL}/fps/ipn`);
  });

  it('the worker scales: no container_name, no published port', () => {
    assert.equal(services.worker.container_name, undefined);
    assert.equal(services.worker.ports, undefined);
  });

  it('long-running services have health checks; dependencies wait for them', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.restart === 'no') continue; // one-shot jobs
      assert.ok(service.healthcheck?.test, `${name} has no healthcheck`);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.ok(services[dependency], `${name} depends on unknown service ${dependency}`);
        if (condition === 'service_healthy')
          assert.ok(services[dependency].healthcheck, `${name} waits for ${dependency}'s health, which has no check`);
        if (condition === 'service_completed_successfully') assert.equal(services[dependency].restart, 'no');
      }
    }
  });

  it('registers the search attributes the workflows use', () => {
    const job = JSON.stringify(services['temporal-admin-tools'].command);
    for (const name of Object.values(SEARCH_ATTRIBUTES))
      assert.ok(job.includes(name), `search attribute ${name} not registered`);
    for (const name of ['worker', 'api'])
      assert.equal(services[name].depends_on?.['temporal-admin-tools']?.condition, 'service_completed_successfully');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  it('builds on node:20-bookworm-slim with openssl and the build tools of better-sqlite3, via npm ci', () => {
    assert.match(dockerfile, /^FROM node:20-bookworm-slim\b/m);
    assert.match(dockerfile, /apt-get install[^\n]*\bopenssl\b/);
    assert.match(dockerfile, /apt-get install[^\n]*\bmake\b[^\n]*\bg\+\+/);
    assert.match(dockerfile, /\bnpm ci\b/);
    assert.match(dockerfile, /COPY package\.json package-lock\.json/);
  });
  it('runs as an unprivileged user with a default command that is an npm script', () => {
    assert.match(dockerfile, /^USER node$/m);
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    assert.ok(cmd);
    const [npm, run, script] = JSON.parse(cmd[1]) as string[];
    assert.equal(`${npm} ${run}`, 'npm run');
    assert.ok(pkg.scripts[script]);
  });
  it('keeps local state and dependencies out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', '.data', '.git'])
      assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
  });
});
