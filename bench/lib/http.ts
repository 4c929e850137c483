// A lean keep-alive HTTP/1.1 JSON client for load generation. The benchmark shares the machine's
// CPUs with the services it measures, so it uses node:http with a pooled agent rather than fetch.
import http from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

class StaleSocket extends Error {}

export class HttpClient {
  readonly agent: http.Agent;
  readonly #host: string;
  readonly #port: number;

  constructor(
    readonly origin: string,
    readonly defaultHeaders: Record<string, string> = {},
    maxSockets = 256,
  ) {
    const url = new URL(origin);
    this.#host = url.hostname;
    this.#port = Number(url.port || 80);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  /**
   * One request; sent once more when it fails with ECONNRESET on a reused keep-alive socket (the
   * server closed it while idle, as Node's documentation describes: the request never arrived).
   */
  async request(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
    timeoutMs = 60_000,
  ): Promise<HttpAnswer> {
    try {
      return await this.#exchange(method, path, body, headers, timeoutMs);
    } catch (e) {
      if (!(e instanceof StaleSocket)) throw e;
      return this.#exchange(method, path, body, headers, timeoutMs);
    }
  }

  #exchange(
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const all: Record<string, string | number> = { ...this.defaultHeaders, ...headers };
      if (body !== undefined) {
        all['content-type'] ??= 'application/json';
        all['content-length'] = Buffer.byteLength(body);
      }
      const req = http.request(
        { host: this.#host, port: this.#port, path, method, agent: this.agent, headers: all, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(req.reusedSocket && e.code === 'ECONNRESET' ? new StaleSocket(e.message) : e),
      );
      req.end(body);
    });
  }

  async json<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: T; headers: http.IncomingHttpHeaders; text: string }> {
    const answer = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body), headers);
    let parsed: unknown;
    try {
      parsed = answer.text ? JSON.parse(answer.text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { ...answer, body: parsed as T };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** GET without following redirects (for the CBUI and the return URL): status and Location. */
export async function getNoRedirect(
  client: HttpClient,
  pathAndQuery: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; location?: string; text: string }> {
  const answer = await client.request('GET', pathAndQuery, undefined, headers);
  const location = answer.headers.location;
  return { status: answer.status, location: typeof location === 'string' ? location : undefined, text: answer.text };
}
