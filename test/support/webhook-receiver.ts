// A real webhook receiver for tests: a node:http server on 127.0.0.1 that keeps every request's raw
// body and headers and answers what the test says. It can stop and start again on the same port
// (a receiver that is down for a while).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from './processes';

export interface ReceivedWebhook {
  rawBody: string;
  headers: IncomingHttpHeaders;
  path: string;
  receivedAt: number;
  /** What this receiver answered. */
  status: number;
  /** The body parsed (undefined if it was not JSON). */
  event:
    | {
        id: string;
        type: string;
        instrumentId: string | null;
        sequence: number;
        createdAt: string;
        data: Record<string, unknown>;
      }
    | undefined;
}

export interface WebhookReceiver {
  readonly port: number;
  readonly url: string;
  readonly received: ReceivedWebhook[];
  /** Decides each answer's status (default 200); `n` counts requests from 1. */
  respond: (request: ReceivedWebhook, n: number) => number | Promise<number>;
  listening: boolean;
  start(): Promise<void>;
  /** Stops listening and drops open connections: the sender sees connection refused. */
  stop(): Promise<void>;
  /** Received requests whose body is the event with this id. */
  byEvent(id: string): ReceivedWebhook[];
}

export async function startWebhookReceiver(options: { port?: number; path?: string; listen?: boolean } = {}) {
  const port = options.port ?? (await freePort());
  const path = options.path ?? '/hooks/fps';
  let server: Server | undefined;
  let count = 0;
  const receiver: WebhookReceiver = {
    port,
    url: `http://127.0.0.1:${port}${path}`,
    received: [],
    respond: () => 200,
    listening: false,
    async start() {
      if (server) return;
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          void (async () => {
            const rawBody = Buffer.concat(chunks).toString('utf8');
            let event: ReceivedWebhook['event'];
            try {
              event = JSON.parse(rawBody) as ReceivedWebhook['event'];
            } catch {
              event = undefined;
            }
            const request: ReceivedWebhook = {
              rawBody,
              headers: req.headers,
              path: req.url ?? '',
              receivedAt: Date.now(),
              status: 0,
              event,
            };
            const status = await receiver.respond(request, ++count);
            request.status = status;
            receiver.received.push(request);
            res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
          })();
        });
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
      receiver.listening = true;
      if ((s.address() as AddressInfo).port !== port) throw new Error('receiver port changed');
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = undefined;
      receiver.listening = false;
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    },
    byEvent(id) {
      return receiver.received.filter((r) => r.event?.id === id);
    },
  };
  if (options.listen !== false) await receiver.start();
  return receiver;
}
