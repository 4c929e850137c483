// Transport tests of FpsClient against throw-away loopback servers; the real sandbox is tested elsewhere.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { inspect } from 'node:util';
import type { AddressInfo } from 'node:net';
import { FPS_ACTIONS, type FpsAction, type FpsRequest, type FpsResult } from '../../fps/actions';
import { FpsClient, type FpsClientOptions } from '../../fps/client';
import { FpsError } from '../../fps/errors';
import { verifyQuerySignature } from '../../fps/signature';
import { buildErrorXml, buildResponseXml } from '../../fps/xml';
import { SAMPLE_REQUESTS, SAMPLE_RESULTS } from './fps-samples';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const ACCESS_KEY = 'AKIATESTCLIENT000000';

interface Received {
  method: string;
  host: string;
  path: string;
  contentType: string | undefined;
  params: Record<string, string>;
  signatureValid: boolean;
}

type Answer = (received: Received) => { status: number; body: string };

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** An HTTP server that checks each request's Signature V2 like FPS would, then answers via `answer`. */
async function fpsLikeServer(answer: Answer) {
  const received: Received[] = [];
  let connections = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://placeholder');
      const raw = req.method === 'POST' ? await readBody(req) : url.search.slice(1);
      const params = Object.fromEntries(new URLSearchParams(raw));
      const target = { method: req.method as 'GET' | 'POST', host: req.headers.host ?? '', path: url.pathname };
      const r: Received = {
        method: req.method ?? '',
        host: target.host,
        path: target.path,
        contentType: req.headers['content-type'],
        params,
        signatureValid: verifyQuerySignature(params, target, SECRET),
      };
      received.push(r);
      const { status, body } = r.signatureValid
        ? answer(r)
        : { status: 403, body: buildErrorXml('SignatureDoesNotMatch', 'signature does not match', 'req-sig') };
      res.writeHead(status, { 'content-type': 'text/xml' }).end(body);
    })();
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/`,
    received,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A raw TCP server that does something unhelpful with each connection. */
async function rawServer(onSocket: (socket: Socket) => void) {
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function client(endpoint: string, options: Partial<FpsClientOptions> = {}) {
  return new FpsClient({ endpoint, accessKeyId: ACCESS_KEY, secretKey: SECRET, timeoutMs: 2000, ...options });
}

async function rejection(promise: Promise<unknown>): Promise<FpsError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof FpsError, `expected FpsError, got ${String(e)}`);
    assert.ok(!e.message.includes(SECRET) && !String(e.stack).includes(SECRET), 'secret leaked into an error');
    return e;
  }
  assert.fail('expected a rejection');
}

const pay: FpsRequest<'Pay'> = SAMPLE_REQUESTS.Pay;

describe('fps/client: FpsClient transport', () => {
  describe('every action against a signature-checking server', () => {
    let server: Awaited<ReturnType<typeof fpsLikeServer>>;
    before(async () => {
      server = await fpsLikeServer((r) => {
        const action = r.params.Action as FpsAction;
        return { status: 200, body: buildResponseXml(action, SAMPLE_RESULTS[action], `req-${action}`) };
      });
    });
    after(() => server.close());

    for (const action of FPS_ACTIONS) {
      it(`${action}: signed POST, typed result with requestId`, async () => {
        const result = await client(server.endpoint).call(action, SAMPLE_REQUESTS[action]);
        const last = server.received.at(-1)!;
        assert.ok(last.signatureValid);
        assert.equal(last.params.Action, action);
        assert.deepEqual(result, { ...(SAMPLE_RESULTS[action] as FpsResult<FpsAction>), requestId: `req-${action}` });
      });
    }

    it('sends the common parameters and a form body, signed with host:port and path', async () => {
      const fixed = new Date('2026-11-27T10:11:12.345Z');
      await client(server.endpoint, { now: () => fixed }).call('Pay', pay);
      const last = server.received.at(-1)!;
      assert.equal(last.method, 'POST');
      assert.match(last.contentType ?? '', /^application\/x-www-form-urlencoded/);
      assert.equal(last.host, new URL(server.endpoint).host);
      assert.equal(last.params.AWSAccessKeyId, ACCESS_KEY);
      assert.equal(last.params.Timestamp, '2026-11-27T10:11:12Z');
      assert.equal(last.params.Version, '2008-09-17');
      assert.equal(last.params.SignatureVersion, '2');
      assert.equal(last.params.SignatureMethod, 'HmacSHA256');
      assert.equal(last.params['TransactionAmount.Value'], '12.50');
      assert.equal(last.params['TransactionAmount.CurrencyCode'], 'USD');
      assert.equal(last.params.CallerReference, 'inst-42:pay:order 1001/ü');
      assert.ok(!Object.values(last.params).includes(SECRET));
    });

    it('GET with HmacSHA1 and version 2010-08-28 also verifies', async () => {
      await client(server.endpoint, { httpMethod: 'GET', signatureMethod: 'HmacSHA1', version: '2010-08-28' }).call(
        'Pay',
        pay,
      );
      const last = server.received.at(-1)!;
      assert.equal(last.method, 'GET');
      assert.ok(last.signatureValid);
      assert.equal(last.params.SignatureMethod, 'HmacSHA1');
      assert.equal(last.params.Version, '2010-08-28');
    });

    it('an endpoint with a path signs that path', async () => {
      await client(server.endpoint.replace(/\/$/, '/fps/api')).call('GetOutstandingDebtBalance', {});
      const last = server.received.at(-1)!;
      assert.equal(last.path, '/fps/api');
      assert.ok(last.signatureValid);
    });

    it('a wrong secret is answered with SignatureDoesNotMatch (not retryable)', async () => {
      const error = await rejection(client(server.endpoint, { secretKey: 'another-secret' }).call('Pay', pay));
      assert.equal(error.code, 'SignatureDoesNotMatch');
      assert.equal(error.httpStatus, 403);
      assert.equal(error.requestId, 'req-sig');
      assert.equal(error.retryable, false);
    });

    it('reuses keep-alive connections for sequential calls', async () => {
      const fresh = await fpsLikeServer(() => ({
        status: 200,
        body: buildResponseXml('Pay', SAMPLE_RESULTS.Pay, 'r'),
      }));
      try {
        const c = client(fresh.endpoint);
        for (let i = 0; i < 6; i++) await c.call('Pay', pay);
        // The pool may keep a second socket, but it must not open one per call.
        assert.ok(fresh.connections() <= 2, `${fresh.connections()} connections for 6 calls`);
      } finally {
        await fresh.close();
      }
    });
    it('a reused connection dropped after the request is a retryable NetworkError, never re-sent by the client', async () => {
      // Each connection serves one request, then drops the socket when the next one arrives on it:
      // the server may have executed that request, so only the caller's retry may send it again.
      const answer = buildResponseXml('Pay', SAMPLE_RESULTS.Pay, 'r');
      let requests = 0;
      const server = await rawServer((socket) => {
        let served = 0;
        socket.on('data', () => {
          requests++;
          if (served++ > 0) return socket.destroy();
          socket.write(
            `HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: ${Buffer.byteLength(answer)}\r\n\r\n${answer}`,
          );
        });
      });
      try {
        const c = client(server.endpoint);
        assert.equal((await c.call('Pay', pay)).transactionId, SAMPLE_RESULTS.Pay.transactionId);
        const error = await rejection(c.call('Pay', pay));
        assert.equal(error.code, 'NetworkError');
        assert.equal(error.retryable, true);
        assert.equal(requests, 2, 'the dropped request was sent once');
      } finally {
        await server.close();
      }
    });
  });

  describe('failures', () => {
    it('a server that never answers: Timeout, retryable', async () => {
      const server = await rawServer(() => undefined);
      try {
        const started = Date.now();
        const error = await rejection(client(server.endpoint, { timeoutMs: 150 }).call('Pay', pay));
        assert.equal(error.code, 'Timeout');
        assert.equal(error.retryable, true);
        assert.equal(error.httpStatus, undefined);
        assert.ok(Date.now() - started < 1500);
      } finally {
        await server.close();
      }
    });

    it('a server that stalls in the middle of the body: Timeout', async () => {
      const server = await rawServer((socket) => {
        socket.once('data', () =>
          socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: 500\r\n\r\n<PayResponse>'),
        );
      });
      try {
        const error = await rejection(client(server.endpoint, { timeoutMs: 150 }).call('Pay', pay));
        assert.equal(error.code, 'Timeout');
        assert.equal(error.retryable, true);
      } finally {
        await server.close();
      }
    });

    it('a server that closes the socket: NetworkError, retryable', async () => {
      const server = await rawServer((socket) => socket.once('data', () => socket.destroy()));
      try {
        const error = await rejection(client(server.endpoint).call('Pay', pay));
        assert.equal(error.code, 'NetworkError');
        assert.equal(error.retryable, true);
      } finally {
        await server.close();
      }
    });

    it('nobody listening: NetworkError naming ECONNREFUSED', async () => {
      const server = await rawServer(() => undefined);
      const { endpoint } = server;
      await server.close();
      const error = await rejection(client(endpoint).call('Pay', pay));
      assert.equal(error.code, 'NetworkError');
      assert.match(error.message, /ECONNREFUSED/);
      assert.equal(error.retryable, true);
    });

    const answers: Array<[string, number, string, Partial<FpsError>]> = [
      [
        '503 ServiceUnavailable',
        503,
        buildErrorXml('ServiceUnavailable', 'try later', 'req-503'),
        { code: 'ServiceUnavailable', httpStatus: 503, retryable: true, requestId: 'req-503' },
      ],
      [
        '503 with an HTML body',
        503,
        '<html><body>Service Unavailable</body></html>',
        { code: 'MalformedResponse', httpStatus: 503, retryable: true },
      ],
      [
        '500 InternalError',
        500,
        buildErrorXml('InternalError', 'oops', 'req-500'),
        { code: 'InternalError', retryable: true },
      ],
      [
        '400 InsufficientBalance',
        400,
        buildErrorXml('InsufficientBalance', 'balance too low', 'req-400'),
        { code: 'InsufficientBalance', httpStatus: 400, retryable: false, requestId: 'req-400' },
      ],
      [
        '400 OriginalTransactionIncomplete',
        400,
        buildErrorXml('OriginalTransactionIncomplete', 'pending', 'r'),
        { code: 'OriginalTransactionIncomplete', retryable: true },
      ],
      [
        'garbage 200 body',
        200,
        'this is not xml <<<',
        { code: 'MalformedResponse', httpStatus: 200, retryable: false },
      ],
      ['empty 200 body', 200, '', { code: 'MalformedResponse', retryable: false }],
      [
        '200 answer of another action',
        200,
        buildResponseXml('Refund', SAMPLE_RESULTS.Refund, 'r'),
        { code: 'MalformedResponse' },
      ],
      [
        '200 without TransactionId',
        200,
        '<PayResponse><PayResult><TransactionStatus>Success</TransactionStatus></PayResult></PayResponse>',
        { code: 'MalformedResponse' },
      ],
      [
        '200 carrying an error document',
        200,
        buildErrorXml('Throttling', 'slow down', 'r'),
        { code: 'Throttling', retryable: true },
      ],
      ['302 redirect', 302, '', { code: 'MalformedResponse', httpStatus: 302, retryable: false }],
    ];
    for (const [name, status, body, expected] of answers) {
      it(`${name}: ${expected.code}`, async () => {
        const server = await fpsLikeServer(() => ({ status, body }));
        try {
          const error = await rejection(client(server.endpoint).call('Pay', pay));
          for (const [key, value] of Object.entries(expected)) assert.equal(error[key as keyof FpsError], value, key);
        } finally {
          await server.close();
        }
      });
    }

    it('a request that cannot be encoded fails locally with InvalidParams and sends nothing', async () => {
      const server = await fpsLikeServer(() => ({ status: 200, body: '' }));
      try {
        const c = client(server.endpoint);
        const missing = await rejection(
          c.call('Pay', { ...pay, senderTokenId: undefined } as unknown as FpsRequest<'Pay'>),
        );
        assert.equal(missing.code, 'InvalidParams');
        assert.equal(missing.retryable, false);
        const fractional = await rejection(
          c.call('Pay', { ...pay, transactionAmount: { amount: 12.5, currency: 'USD' } }),
        );
        assert.equal(fractional.code, 'InvalidParams');
        const huge = await rejection(
          c.call('Pay', { ...pay, transactionAmount: { amount: 10 ** 13, currency: 'USD' } }),
        );
        assert.equal(huge.code, 'AmountOutOfRange');
        const loneSurrogate = await rejection(c.call('Pay', { ...pay, callerReference: 'inst-1:pay:\uD800' }));
        assert.equal(loneSurrogate.code, 'InvalidParams');
        assert.equal(server.received.length, 0);
      } finally {
        await server.close();
      }
    });
  });

  describe('configuration and secrecy', () => {
    it('rejects unusable endpoints and missing credentials', () => {
      assert.throws(() => client('not a url'), TypeError);
      assert.throws(() => client('ftp://127.0.0.1/'), TypeError);
      assert.throws(() => client('http://127.0.0.1/?x=1'), TypeError);
      assert.throws(() => client('http://127.0.0.1/', { secretKey: '' }), TypeError);
    });

    it('the secret is in neither inspect, JSON nor the signed parameters', () => {
      const c = client('http://127.0.0.1:8701/');
      assert.ok(!inspect(c, { showHidden: true, depth: 5 }).includes(SECRET));
      assert.ok(!JSON.stringify(c).includes(SECRET));
      assert.ok(!JSON.stringify(c.signedParams('Pay', pay)).includes(SECRET));
    });

    it('signs with the default port dropped and a non-default one kept', () => {
      const now = () => new Date('2026-11-27T00:00:00Z');
      const target = (endpoint: string) => ({ method: 'POST' as const, host: new URL(endpoint).host, path: '/' });
      for (const endpoint of ['https://FPS.sandbox.amazonaws.com:443/', 'http://127.0.0.1:8701/']) {
        const params = client(endpoint, { now }).signedParams('Pay', pay);
        assert.ok(verifyQuerySignature(params, target(endpoint), SECRET), endpoint);
      }
    });
  });
});
