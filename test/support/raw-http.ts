// HTTP/1.1 over a plain socket, byte for byte as given: for requests that fetch() and node:http
// refuse to send (raw `../` paths, CR/LF or non-ASCII bytes in headers, bodies that lie about
// their type). Connection: close, so the answer ends with the socket.
import net from 'node:net';

export interface RawRequest {
  method: string;
  /** Sent as is: no normalisation, no encoding. */
  path: string;
  /** Header lines as is (a value may hold CR/LF: that is the point). */
  headers?: Array<[string, string | Buffer]>;
  body?: string | Buffer;
  /** Content-Length is added for a body unless this is false. */
  contentLength?: boolean;
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** Header names in the order received (lower case), to catch injected ones. */
  headerNames: string[];
  body: string;
  json: any;
}

export function rawRequest(baseUrl: string, request: RawRequest): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const body =
    request.body === undefined
      ? Buffer.alloc(0)
      : Buffer.isBuffer(request.body)
        ? request.body
        : Buffer.from(request.body, 'utf8');
  const lines: Buffer[] = [
    Buffer.from(`${request.method} ${request.path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n`, 'latin1'),
  ];
  for (const [name, value] of request.headers ?? []) {
    lines.push(
      Buffer.from(`${name}: `, 'latin1'),
      Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'),
      Buffer.from('\r\n', 'latin1'),
    );
  }
  if (body.length > 0 && request.contentLength !== false)
    lines.push(Buffer.from(`Content-Length: ${body.length}\r\n`, 'latin1'));
  lines.push(Buffer.from('\r\n', 'latin1'), body);
  const wire = Buffer.concat(lines);

  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(request.timeoutMs ?? 30_000, () =>
      socket.destroy(new Error(`no answer to ${request.method} ${request.path.slice(0, 80)}`)),
    );
    socket.on('data', (chunk) => chunks.push(chunk));
    // The server may answer and close before reading a large body: that is an answer, not an error.
    socket.on('error', (err) => (chunks.length ? undefined : reject(err)));
    socket.on('close', () => {
      try {
        resolve(parse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
    // No half-close: Node's HTTP server aborts a request whose client ended its side before the answer.
    socket.write(wire);
  });
}

function parse(raw: Buffer): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`not an HTTP response: ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...headerLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  const headerNames: string[] = [];
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    headerNames.push(name);
    headers[name] = line.slice(colon + 1).trim();
  }
  let bodyBytes = raw.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) bodyBytes = dechunk(bodyBytes);
  const body = bodyBytes.toString('utf8');
  let json: unknown;
  try {
    json = body ? JSON.parse(body) : undefined;
  } catch {
    json = undefined;
  }
  return { status, headers, headerNames, body, json };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) break;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (!size) break;
    out.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(out);
}
