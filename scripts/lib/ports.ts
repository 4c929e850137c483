// Port helpers for the dev/test tooling: pick free ports, and explain a busy one before a child
// process fails with a less helpful message.
import net from 'node:net';

/**
 * `count` distinct free TCP ports on `host`. All listeners stay open until every port is picked,
 * so the OS cannot hand out the same port twice; the usual small race (someone else binds the
 * port before our child does) remains and shows up as the child's "address already in use".
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
      ports.push((server.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port;
}

/** Throws a readable error when `port` is taken (e.g. a Temporal server from an earlier run). */
export async function assertPortFree(port: number, host: string, what: string, hint = ''): Promise<void> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(`port ${host}:${port} (${what}) is already in use${hint ? `: ${hint}` : ''}`, {
        cause: err,
      });
    }
    throw err;
  } finally {
    await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  }
}

/**
 * `count` distinct free ports in [min, max), chosen at random (for programs that cannot take the
 * OS's ephemeral ports: Temporal stores membership ports in a SMALLINT, so they must be < 32768).
 */
export async function freePortsInRange(count: number, min: number, max: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < count; tries++) {
      if (tries > count * 50) throw new Error(`no ${count} free ports in [${min}, ${max}) on ${host}`);
      const port = min + Math.floor(Math.random() * (max - min));
      if (ports.includes(port)) continue;
      const server = net.createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, host, () => resolve(true));
      });
      if (!bound) continue;
      servers.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
