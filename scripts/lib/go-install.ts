// Builds pinned Go programs once per machine with `go install pkg@version` into a cache folder
// (GOBIN), with a progress heartbeat: the Temporal CLI, the Temporal server and its SQL schema
// tool, the Temporal Web UI server. Also finds a module's files in Go's module cache.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export type Progress = (message: string) => void;

export function run(command: string, args: string[], timeoutMs = 10_000): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ ok: !error, output: `${stdout}${stderr}`.trim() }),
    );
  });
}

/** Throws a readable error unless `go` >= min is installed; `what` says what needed it. */
export async function checkGo(min: readonly [number, number], what: string, override: string): Promise<void> {
  const hint = `install Go >= ${min.join('.')} or set ${override}`;
  const { ok, output } = await run('go', ['version']);
  if (!ok) throw new Error(`${what} is not installed and \`go\` was not found: ${hint}`);
  const match = /go(\d+)\.(\d+)/.exec(output);
  const [major, minor] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (major < min[0] || (major === min[0] && minor < min[1])) {
    throw new Error(`${what} is not installed and ${output} is too old to build it: ${hint}`);
  }
}

/** One `go install` run with a heartbeat every 20 s; resolves to its combined output and success. */
function goInstallOnce(
  target: string,
  env: NodeJS.ProcessEnv,
  progress: Progress,
): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const lines: string[] = [];
    const child = spawn('go', ['install', target], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => lines.push(line));
    }
    // So a first start (or a CI log) does not look hung while Go works.
    const heartbeat = setInterval(() => {
      const downloads = lines.filter((l) => l.startsWith('go: downloading')).length;
      progress(`still building (${Math.round((Date.now() - started) / 1000)} s, ${downloads} modules downloaded)`);
    }, 20_000);
    const done = (ok: boolean) => {
      clearInterval(heartbeat);
      resolve({ ok, output: lines.join('\n') });
    };
    child.once('error', () => done(false));
    child.once('close', (code) => done(code === 0));
  });
}

/**
 * `go install <pkg>@<version>` into `gobin`; resolves to the path of the binary `exe`. Retries once
 * without the checksum database when only that cannot be reached (never on a real mismatch).
 */
export async function goInstall(options: {
  pkg: string;
  version: string;
  gobin: string;
  exe: string;
  progress: Progress;
}): Promise<string> {
  const { pkg, version, gobin, exe, progress } = options;
  mkdirSync(gobin, { recursive: true });
  const target = `${pkg}@${version}`;
  progress(`go install ${target} (GOBIN=${gobin})`);
  const started = Date.now();
  const env = { ...process.env, GOBIN: gobin };
  let result = await goInstallOnce(target, env, progress);
  if (
    !result.ok &&
    /sum\.golang\.org|checksum database|verifying/i.test(result.output) &&
    !/SECURITY ERROR|mismatch/.test(result.output)
  ) {
    progress('the Go checksum database cannot be reached; retrying once with GOSUMDB=off');
    result = await goInstallOnce(target, { ...env, GOSUMDB: 'off' }, progress);
  }
  const bin = path.join(gobin, exe);
  if (!result.ok || !existsSync(bin)) {
    throw new Error(`go install ${target} failed:\n${result.output.split('\n').slice(-20).join('\n')}`);
  }
  progress(`built ${bin} in ${Math.round((Date.now() - started) / 1000)} s`);
  return bin;
}

/**
 * The folder of `module@version` in Go's module cache (`go env GOMODCACHE`), downloading the module
 * first (`go mod download`) when it is not there.
 */
export async function goModuleDir(module: string, version: string, progress: Progress): Promise<string> {
  const { ok, output } = await run('go', ['env', 'GOMODCACHE']);
  if (ok && output) {
    // The module cache escapes upper-case letters as !lower.
    const escaped = module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
    const dir = path.join(output.split('\n')[0], `${escaped}@${version}`);
    if (existsSync(dir)) return dir;
  }
  progress(`go mod download ${module}@${version}`);
  const download = await run('go', ['mod', 'download', '-json', `${module}@${version}`], 600_000);
  let dir: string | undefined;
  try {
    dir = (JSON.parse(download.output) as { Dir?: string }).Dir;
  } catch {
    dir = undefined;
  }
  if (!download.ok || !dir || !existsSync(dir)) {
    throw new Error(
      `go mod download ${module}@${version} failed:\n${download.output.split('\n').slice(-10).join('\n')}`,
    );
  }
  return dir;
}
