// Hostile input against every route of the merchant API (the real API process of the shared test
// stack): property tests with fast-check, fixed seed and bounded runs. Whatever arrives — malformed
// JSON, wrong types, huge or deeply nested bodies, unicode, hostile amounts and currencies, unknown
// or path-traversal ids, CR/LF and non-ASCII in Idempotency-Key, forged keys — the answer is a 4xx
// application/problem+json with a `code`, never a 5xx; no workflow is started and the FPS ledger
// does not move. The rate limiter (api/rate-limit.ts) answers 429 problem+json with Retry-After.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import fc from 'fast-check';
import type { z } from 'zod';
import { createApi } from '../../api/app';
import { rateLimit } from '../../api/rate-limit';
import * as schemas from '../../api/schemas';
import { config, DEV_API_KEY } from '../../config';
import { parseDecimal } from '../../fps/money';
import { freePorts, spawnService } from '../support/processes';
import { rawRequest, type RawResponse } from '../support/raw-http';
import { testClient } from '../support/temporal';
import { activeInstrument, call, getStack, sandboxAdmin, until, type Stack } from './stack';

const SEED = 7_302_026;
const PROBLEM = /^application\/problem\+json/;

/** The money part of the sandbox summary (tokens may be cancelled by other suites' closing instruments). */
async function moneyFingerprint(stack: Stack): Promise<string> {
  const s = await sandboxAdmin(stack, '/admin/summary');
  return JSON.stringify({
    transactions: s.transactions,
    prepaid: s.prepaid,
    credit: s.credit,
    pending: s.pendingTransactions,
  });
}

describe('api: hostile input (property tests, real API process)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let instrumentId: string;
  let customerId: string;
  let storeCookie: string;
  let ledgerBefore: string;
  let workflowsBefore: number;
  let balanceBefore: number;
  let tried = 0;
  const byStatus = new Map<number, number>();

  const queueQuery = () => `TaskQueue = "${stack.taskQueue}"`;

  before(async function () {
    this.timeout(120_000);
    stack = await getStack();
    customerId = `hostile-${Date.now().toString(36)}`;
    ({ instrumentId } = await activeInstrument(stack, customerId, {
      type: 'prepaid',
      fundingAmount: '20.00',
      currency: 'USD',
    }));
    const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
      body: { amount: '1.00', currency: 'USD' },
      headers: { 'idempotency-key': 'seed-purchase' },
    });
    assert.equal(bought.status, 201, bought.text);
    const session = await fetch(`${stack.apiUrl}/store/api/session`);
    storeCookie = (session.headers.get('set-cookie') ?? '').split(';')[0];
    assert.ok(storeCookie, 'a storefront session cookie');
    // Earlier suites may still be settling Pending transactions or delivering IPNs: wait for calm.
    await until(
      'a quiet sandbox',
      async () => {
        const s = await sandboxAdmin(stack, '/admin/summary');
        return s.pendingTransactions === 0 && !(s.ipnDeliveries?.pending > 0);
      },
      30_000,
      200,
    );
    ledgerBefore = await moneyFingerprint(stack);
    workflowsBefore = (await stack.client.workflow.count(queueQuery())).count;
    balanceBefore = (await call(stack, 'GET', `/instruments/${instrumentId}`)).body.balance.minorUnits;
  });

  after(function () {
    const statuses = [...byStatus]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}×${n}`)
      .join(', ');
    console.log(`      hostile inputs tried: ${tried} (answers: ${statuses})`);
  });

  /**
   * Every hostile answer: 4xx, problem+json, a code. A violation is recorded rather than thrown, so
   * a property runs all its inputs and the test lists every distinct way the API got it wrong.
   */
  let violations = new Map<string, string>();
  function assertRefused(answer: RawResponse, what: string): void {
    tried++;
    byStatus.set(answer.status, (byStatus.get(answer.status) ?? 0) + 1);
    const context = `${what} → ${answer.status} ${answer.body.slice(0, 200)}`;
    let problem: string | undefined;
    if (!(answer.status >= 400 && answer.status < 500)) problem = `answered ${answer.status}, not a 4xx`;
    else if (!PROBLEM.test(answer.headers['content-type'] ?? ''))
      problem = `${answer.status} is not application/problem+json`;
    else if (typeof answer.json?.code !== 'string' || answer.json?.status !== answer.status)
      problem = `${answer.status} problem without a code or status`;
    const kind = problem && `${problem} (${answer.json?.code ?? 'no code'})`;
    if (kind && !violations.has(kind)) violations.set(kind, context);
  }
  function assertNoViolations(): void {
    const found = [...violations].map(([kind, example]) => `${kind}; e.g. ${example}`);
    violations = new Map();
    assert.deepEqual(found, [], 'hostile input answered outside the error model');
  }
  afterEach(() => {
    violations = new Map();
  });

  const send = (
    method: string,
    path: string,
    options: {
      body?: string | Buffer;
      headers?: Array<[string, string | Buffer]>;
      key?: string | null;
      json?: boolean;
    } = {},
  ) => {
    const headers: Array<[string, string | Buffer]> = [];
    if (options.key !== null) headers.push(['X-Api-Key', options.key ?? stack.apiKey]);
    if (options.body !== undefined && options.json !== false) headers.push(['Content-Type', 'application/json']);
    headers.push(...(options.headers ?? []));
    return rawRequest(stack.apiUrl, { method, path, headers, body: options.body });
  };

  let keySeq = 0;
  const freshKey = () => ['Idempotency-Key', `hostile-${++keySeq}`] as [string, string];
  const runs = (numRuns: number) => ({ seed: SEED, numRuns, endOnFailure: true });

  // ---- the routes and what a valid body looks like (so that hostile ones are never valid) ----------

  type PostRoute = { name: string; path: () => string; schema: z.ZodType; headers?: () => Array<[string, string]> };
  const postRoutes = (): PostRoute[] => [
    {
      name: 'create instrument',
      path: () => `/customers/${customerId}/instruments`,
      schema: schemas.CreateInstrumentRequest,
    },
    { name: 'purchase', path: () => `/instruments/${instrumentId}/purchases`, schema: schemas.PurchaseRequest },
    { name: 'fund', path: () => `/instruments/${instrumentId}/fund`, schema: schemas.FundRequest },
    { name: 'settle', path: () => `/instruments/${instrumentId}/settle`, schema: schemas.SettleRequest },
    { name: 'write-off', path: () => `/instruments/${instrumentId}/write-off`, schema: schemas.WriteOffRequest },
    { name: 'refund', path: () => `/instruments/${instrumentId}/refunds`, schema: schemas.RefundRequest },
    { name: 'capture', path: () => `/instruments/${instrumentId}/capture`, schema: schemas.CaptureRequest },
    { name: 'void', path: () => `/instruments/${instrumentId}/void`, schema: schemas.VoidRequest },
    { name: 'close', path: () => `/instruments/${instrumentId}/close`, schema: schemas.CloseRequest },
    {
      name: 'store create',
      path: () => '/store/api/instruments',
      schema: schemas.StoreCreateInstrumentRequest,
      headers: () => [['Cookie', storeCookie]],
    },
    {
      name: 'store purchase',
      path: () => `/store/api/instruments/${instrumentId}/purchases`,
      schema: schemas.StorePurchaseRequest,
      headers: () => [['Cookie', storeCookie]],
    },
  ];

  // ---- arbitraries -----------------------------------------------------------------------------------

  const DECIMAL = /^(0|[1-9]\d*)(?:\.(\d+))?$/;
  const validAmount = (amount: unknown, currency: unknown) => {
    try {
      return typeof amount === 'string' && typeof currency === 'string' && parseDecimal(amount, currency) > 0;
    } catch {
      return false;
    }
  };
  const decoded = (id: string) => {
    try {
      return decodeURIComponent(id);
    } catch {
      return id;
    }
  };
  /** Amounts no route may accept: not a plain decimal, zero, too many decimals, absurd, or not a string. */
  const hostileAmount: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom<unknown>(
      '0',
      '0.00',
      '-1.00',
      '-0',
      '+1.00',
      '1e2',
      '1E308',
      '1e308',
      'NaN',
      'Infinity',
      '-Infinity',
      '',
      ' ',
      ' 1.00',
      '1.00 ',
      '1,00',
      '1.001',
      '0.001',
      '1.',
      '.5',
      '01.00',
      '1.0.0',
      '0x10',
      '１.００',
      '١٫٠٠',
      '1\u00a000',
      '1.00\u0000',
      '9'.repeat(17),
      `${'9'.repeat(30)}.99`,
      '10000000000.01',
      '1/2',
      '½',
      '1_000.00',
      'null',
      'true',
      '[1]',
      '{"a":1}',
      '1.00; DROP TABLE transactions',
      '${7*7}',
      '{{7*7}}',
      1,
      0,
      -1,
      1.5,
      1e308,
      -1e308,
      5e-324,
      Number.MAX_SAFE_INTEGER,
      null,
      true,
      false,
      [],
      {},
      ['1.00'],
      { value: '1.00' },
    ),
    fc.double({ noNaN: true }),
    fc.integer(),
    // Plain decimals with more decimals than USD has.
    fc.tuple(fc.nat(9999), fc.integer({ min: 100, max: 999_999 })).map(([whole, frac]) => `${whole}.${frac}`),
    // Strings that are not plain decimals at all.
    fc.string({ maxLength: 30 }).filter((s) => !DECIMAL.test(s)),
    fc.string({ unit: 'binary', maxLength: 20 }).filter((s) => !DECIMAL.test(s)),
  );
  const hostileCurrency: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom<unknown>(
      'usd',
      'US',
      'USDD',
      'XXX',
      'BTC',
      '',
      ' USD',
      'USD ',
      'ＵＳＤ',
      'U\u0000SD',
      'toString',
      '__proto__',
      'constructor',
      1,
      null,
      true,
      ['USD'],
      { code: 'USD' },
    ),
    fc.string({ maxLength: 8 }).filter((s) => !['USD', 'EUR', 'GBP', 'JPY'].includes(s)),
  );
  /** JSON that is not valid JSON. */
  const malformedJson = fc.oneof(
    fc.constantFrom(
      '{',
      '}',
      '{"amount":',
      '{"amount": "1.00",}',
      "{'amount': '1.00'}",
      '{"amount": 1.00.0}',
      'NaN',
      'undefined',
      '[1,2',
      '"\\u12"',
      '{"a":"\\x41"}',
      '\u0000',
      '{"a":1}{"b":2}',
      '\ufeff{}',
    ),
    fc.string({ minLength: 1, maxLength: 60 }).filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    }),
    fc.string({ maxLength: 40 }).map((s) => `{"amount": "1.00", "currency": "USD", ${s}`),
  );
  /** Unknown instrument ids and ids that try to climb out of their path segment. */
  const hostileId = fc.oneof(
    fc.constantFrom(
      '..',
      '../',
      '..%2f',
      '..%2F',
      '%2e%2e',
      '%2e%2e%2f%2e%2e',
      '%252e%252e',
      '....//',
      '..;',
      '.',
      '%2F',
      '%00',
      '%ff',
      '%c0%ae%c0%ae',
      'ins_..%5c..%5c',
      `ins_${'a'.repeat(1000)}`,
      'a'.repeat(10_000),
      'ins_aaaaaaaaaaaaaaaaaaaa',
      'ins_zzzzzzzzzzzzzzzzzzzz',
      'instrument-ins_x',
      '%20',
      '%09',
      'ins%0d%0aX-Injected:%201',
      encodeURIComponent('ins_ﬁ'),
      encodeURIComponent('ins_\u202e'),
      '*',
      '$where',
      "ins_'or'1'='1",
      'ins_"',
      '%22%20OR%201%3D1',
    ),
    fc.string({ minLength: 1, maxLength: 60 }).map((s) => encodeURIComponent(s)),
    fc.stringMatching(/^ins_[a-z2-7]{20}$/),
  );

  // ---- the properties ----------------------------------------------------------------------------

  it('malformed JSON on every JSON route: 400 malformed_json (or another 4xx), never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...postRoutes()), malformedJson, async (route, body) => {
        assertRefused(
          await send('POST', route.path(), { body, headers: [freshKey(), ...(route.headers?.() ?? [])] }),
          `${route.name} ${JSON.stringify(body)}`,
        );
      }),
      runs(150),
    );
    assertNoViolations();
  });

  it('bodies of the wrong shape or types on every JSON route are refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...postRoutes()),
        fc.oneof(
          fc.jsonValue({ maxDepth: 3 }),
          fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
          fc.record(
            {
              amount: fc.jsonValue({ maxDepth: 1 }),
              currency: fc.jsonValue({ maxDepth: 1 }),
              purchaseId: fc.jsonValue({ maxDepth: 1 }),
              extra: fc.jsonValue({ maxDepth: 1 }),
            },
            { requiredKeys: [] },
          ),
        ),
        async (route, body) => {
          // Only bodies the route's own schema refuses: a valid {} would close, void or settle for real.
          fc.pre(!route.schema.safeParse(body).success);
          assertRefused(
            await send('POST', route.path(), {
              body: JSON.stringify(body),
              headers: [freshKey(), ...(route.headers?.() ?? [])],
            }),
            `${route.name} ${JSON.stringify(body).slice(0, 200)}`,
          );
        },
      ),
      runs(250),
    );
    assertNoViolations();
  });

  it('hostile amounts and currencies (negative, zero, NaN, 1e308, numbers, too many decimals, unicode digits, wrong currency)', async () => {
    const amountRoutes = [
      {
        name: 'purchase',
        path: () => `/instruments/${instrumentId}/purchases`,
        body: (amount: unknown, currency: unknown) => ({ amount, currency }),
      },
      {
        name: 'fund',
        path: () => `/instruments/${instrumentId}/fund`,
        body: (amount: unknown, currency: unknown) => ({ amount, currency }),
      },
      {
        name: 'refund',
        path: () => `/instruments/${instrumentId}/refunds`,
        body: (amount: unknown, currency: unknown) => ({ purchaseId: 'seed-purchase', amount, currency }),
      },
      {
        name: 'settle',
        path: () => `/instruments/${instrumentId}/settle`,
        body: (amount: unknown, currency: unknown) => ({ amount, currency }),
      },
      {
        name: 'capture',
        path: () => `/instruments/${instrumentId}/capture`,
        body: (amount: unknown, currency: unknown) => ({ amount, currency }),
      },
      {
        name: 'create prepaid',
        path: () => `/customers/${customerId}/instruments`,
        body: (amount: unknown, currency: unknown) => ({ type: 'prepaid', fundingAmount: amount, currency }),
      },
      {
        name: 'create postpaid',
        path: () => `/customers/${customerId}/instruments`,
        body: (amount: unknown, currency: unknown) => ({
          type: 'postpaid',
          creditLimit: amount,
          globalAmountLimit: amount,
          currency,
        }),
      },
      {
        name: 'create single use',
        path: () => `/customers/${customerId}/instruments`,
        body: (amount: unknown, currency: unknown) => ({ type: 'single-use', amount, currency }),
      },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...amountRoutes),
        // A hostile amount with any currency, or a valid-looking amount with a hostile currency.
        fc.oneof(
          fc.tuple(hostileAmount, fc.oneof(fc.constant<unknown>('USD'), hostileCurrency)),
          fc.tuple(fc.constantFrom<unknown>('1.00', '0.01', '5'), hostileCurrency),
          // Valid format, another supported currency than the instrument's, or more than it holds.
          fc.tuple(fc.constantFrom<unknown>('1.00', '1'), fc.constantFrom<unknown>('EUR', 'GBP', 'JPY')),
          fc.tuple(fc.constantFrom<unknown>('100000.00', '9999999999.99'), fc.constant<unknown>('USD')),
        ),
        async (route, [amount, currency]) => {
          // A create in any supported currency with a valid amount is a valid instrument: not hostile.
          fc.pre(!(route.name.startsWith('create') && validAmount(amount, currency)));
          const body = JSON.stringify(route.body(amount, currency));
          assertRefused(await send('POST', route.path(), { body, headers: [freshKey()] }), `${route.name} ${body}`);
        },
      ),
      runs(300),
    );
    assertNoViolations();
  });

  it('unknown instruments and path-traversal ids, on every instrument route, with valid bodies', async () => {
    const routes = [
      { method: 'GET', path: (id: string) => `/instruments/${id}` },
      {
        method: 'POST',
        path: (id: string) => `/instruments/${id}/purchases`,
        body: { amount: '0.01', currency: 'USD' },
      },
      { method: 'POST', path: (id: string) => `/instruments/${id}/fund`, body: { amount: '0.01', currency: 'USD' } },
      { method: 'POST', path: (id: string) => `/instruments/${id}/close`, body: {} },
      { method: 'POST', path: (id: string) => `/instruments/${id}/settle`, body: {} },
      { method: 'POST', path: (id: string) => `/instruments/${id}/refunds`, body: { purchaseId: 'seed-purchase' } },
      { method: 'GET', path: (id: string) => `/customers/${id}/instruments` },
      {
        method: 'POST',
        path: (id: string) => `/customers/${id}/instruments`,
        body: { type: 'prepaid', fundingAmount: '1.00', currency: 'USD' },
      },
      { method: 'GET', path: (id: string) => `/store/api/instruments/${id}`, store: true },
      {
        method: 'POST',
        path: (id: string) => `/store/api/instruments/${id}/purchases`,
        body: { itemId: 'song' },
        store: true,
      },
      // The real instrument, reached through a traversal: must not resolve to it.
      {
        method: 'POST',
        path: (id: string) => `/instruments/${id}/../${instrumentId}/purchases`,
        body: { amount: '0.01', currency: 'USD' },
      },
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), hostileId, async (route, id) => {
        // A well-formed customer id is a customer like any other: creating or listing is fine there.
        fc.pre(!(route.path('X').startsWith('/customers/') && schemas.CustomerId.safeParse(decoded(id)).success));
        const headers: Array<[string, string]> = [freshKey()];
        if (route.store) headers.push(['Cookie', storeCookie]);
        const answer = await send(route.method, route.path(id), {
          body: route.body && JSON.stringify(route.body),
          headers,
        });
        assertRefused(answer, `${route.method} ${route.path(id).slice(0, 120)}`);
      }),
      runs(250),
    );
    assertNoViolations();
  });

  it('hostile Idempotency-Key headers (CR/LF-smuggled header lines, non-ASCII, 10k characters, separators) with an otherwise valid purchase', async () => {
    const valid = JSON.stringify({ amount: '0.01', currency: 'USD' });
    const fixed: Array<string | Buffer> = [
      'bad key',
      ' ',
      'a:b',
      '../x',
      'a/b',
      '"quoted"',
      'k'.repeat(65),
      'k'.repeat(10_000),
      '-leading-dash',
      '.dot',
      'ключ',
      '鍵',
      'key\u202e',
      Buffer.from('key\xff\xfe', 'latin1'),
      Buffer.from('k\u00e9', 'latin1'),
      // CR/LF injection: a second header line smuggled in after an invalid key.
      'bad key\r\nX-Injected: 1',
      'a:b\r\nSet-Cookie: session=evil',
    ];
    const generated = fc.oneof(
      // Control characters are not HTTP: they belong to the malformed-HTTP test below.
      fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }).filter(
        (s) =>
          !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(s) &&
          // eslint-disable-next-line no-control-regex -- control characters are exactly what is excluded
          !/[\x00-\x08\x0a-\x1f\x7f]/.test(s) &&
          s.trim() === s &&
          s.length > 0,
      ),
      fc.string({ minLength: 65, maxLength: 300 }).map((s) => `k${s.replace(/[\r\n]/g, 'x')}`),
    );
    const cases = [...fixed];
    fc.sample(generated, { seed: SEED, numRuns: 60 }).forEach((s) => cases.push(s));
    for (const key of cases) {
      const shown = (Buffer.isBuffer(key) ? key.toString('latin1') : key).slice(0, 40);
      const answer = await send('POST', `/instruments/${instrumentId}/purchases`, {
        body: valid,
        headers: [['Idempotency-Key', key]],
      });
      assertRefused(answer, `Idempotency-Key ${JSON.stringify(shown)}`);
      assert.ok(
        !answer.headerNames.includes('x-injected') && !answer.headerNames.includes('set-cookie'),
        `no header smuggled into the answer: ${JSON.stringify(shown)}`,
      );
    }
    assertNoViolations();
  });

  it('malformed HTTP (NUL, bare CR or LF in a header, a 20 kB header) never reaches a route and is answered 4xx problem+json', async () => {
    // Node's HTTP parser refuses these before Express sees them; api/main.ts needs a
    // server.on('clientError') handler for the answer to follow the error model (see the report).
    const valid = JSON.stringify({ amount: '0.01', currency: 'USD' });
    const cases: Array<[string, string | Buffer]> = [
      ['NUL', Buffer.from([0x6b, 0x00, 0x6b])],
      ['bare CR', 'abc\rdef'],
      ['bare LF', 'abc\ndef'],
      ['DEL', Buffer.from('k\x7f', 'latin1')],
      ['20 kB', 'k'.repeat(20_000)],
      // A blank line smuggled into the header: the rest is a second, malformed request on the connection.
      ['smuggled body', 'bad key\r\n\r\n{"amount":"999.00","currency":"USD"}'],
    ];
    const bare: string[] = [];
    for (const [name, key] of cases) {
      const answer = await send('POST', `/instruments/${instrumentId}/purchases`, {
        body: valid,
        headers: [['Idempotency-Key', key]],
      });
      tried++;
      assert.ok(answer.status >= 400 && answer.status < 500, `${name}: ${answer.status}`);
      if (!PROBLEM.test(answer.headers['content-type'] ?? ''))
        bare.push(`${name} → ${answer.status} without problem+json`);
    }
    assert.deepEqual(bare, [], 'malformed requests answered outside the error model');
  });

  it('hostile API keys (X-Api-Key and Bearer): 401 problem+json', async () => {
    const valid = JSON.stringify({ amount: '0.01', currency: 'USD' });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          // (Leading/trailing blanks are not part of a header value in HTTP: `key ` is the key.)
          fc.constantFrom(
            `${DEV_API_KEY} x`,
            `x ${DEV_API_KEY}`,
            DEV_API_KEY.toUpperCase(),
            `${DEV_API_KEY}x`,
            DEV_API_KEY.slice(0, -1),
            'k'.repeat(8_000),
            'Bearer',
            'null',
            '*',
            '\u00e9',
          ),
          fc.string({ minLength: 1, maxLength: 100 }).filter((s) => !/[\r\n]/.test(s) && s.trim() !== DEV_API_KEY),
        ),
        fc.boolean(),
        async (key, bearer) => {
          const header: [string, string | Buffer] = bearer
            ? ['Authorization', Buffer.from(`Bearer ${key}`, 'utf8')]
            : ['X-Api-Key', Buffer.from(key, 'utf8')];
          const answer = await send('POST', `/instruments/${instrumentId}/purchases`, {
            body: valid,
            key: null,
            headers: [header, freshKey()],
          });
          assertRefused(answer, `key ${JSON.stringify(key.slice(0, 30))}`);
          assert.equal(answer.status, 401);
        },
      ),
      runs(80),
    );
    assertNoViolations();
  });

  it('huge, deeply nested and unicode bodies: 413 over the limit, 4xx otherwise', async () => {
    const big = (n: number) => JSON.stringify({ amount: '1.00', currency: 'USD', description: 'x'.repeat(n) });
    const cases: Array<[string, string, string | Buffer, Array<[string, string]>?]> = [
      ['17 kB description', `/instruments/${instrumentId}/purchases`, big(17_000)],
      ['1 MB description', `/instruments/${instrumentId}/purchases`, big(1_000_000)],
      [
        '1 MB create',
        `/customers/${customerId}/instruments`,
        JSON.stringify({ type: 'prepaid', fundingAmount: '1.00', currency: 'USD', description: '€'.repeat(400_000) }),
      ],
      [
        '100k-element array',
        `/instruments/${instrumentId}/fund`,
        JSON.stringify(Array.from({ length: 100_000 }, () => 1)),
      ],
      ['nested 5000 deep', `/instruments/${instrumentId}/purchases`, `${'['.repeat(5_000)}${']'.repeat(5_000)}`],
      [
        'nested objects 3000 deep',
        `/instruments/${instrumentId}/settle`,
        `${'{"a":'.repeat(3_000)}1${'}'.repeat(3_000)}`,
      ],
      [
        'lone surrogate',
        `/instruments/${instrumentId}/purchases`,
        '{"amount":"0.01","currency":"USD","description":"\\ud800"}',
      ],
      [
        'invalid UTF-8',
        `/instruments/${instrumentId}/purchases`,
        Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      ],
      [
        '201-char unicode description',
        `/instruments/${instrumentId}/purchases`,
        JSON.stringify({ amount: '0.01', currency: 'USD', description: '😀'.repeat(201) }),
      ],
      [
        'IPN form over 16 kB',
        '/fps/ipn',
        `notificationType=TransactionStatus&x=${'a'.repeat(20_000)}`,
        [['Content-Type', 'application/x-www-form-urlencoded']],
      ],
      [
        'IPN with 1000 parameters',
        '/fps/ipn',
        Array.from({ length: 1000 }, (_, i) => `p${i}=1`).join('&'),
        [['Content-Type', 'application/x-www-form-urlencoded']],
      ],
      [
        'JSON body sent as text/plain',
        `/instruments/${instrumentId}/purchases`,
        JSON.stringify({ amount: '0.01', currency: 'USD' }),
        [['Content-Type', 'text/plain']],
      ],
      [
        'JSON body as a form',
        `/instruments/${instrumentId}/purchases`,
        'amount=0.01&currency=USD',
        [['Content-Type', 'application/x-www-form-urlencoded']],
      ],
      [
        'JSON with charset utf-16',
        `/instruments/${instrumentId}/purchases`,
        JSON.stringify({ amount: '0.01', currency: 'USD' }),
        [['Content-Type', 'application/json; charset=utf-16']],
      ],
      [
        'gzip that is not gzip',
        `/instruments/${instrumentId}/purchases`,
        JSON.stringify({ amount: '0.01', currency: 'USD' }),
        [['Content-Encoding', 'gzip']],
      ],
    ];
    for (const [name, path, body, headers] of cases) {
      const explicitType = headers?.some(([h]) => h === 'Content-Type');
      const answer = await send('POST', path, { body, json: !explicitType, headers: [freshKey(), ...(headers ?? [])] });
      assertRefused(answer, name);
      if (/kB|MB|array/.test(name)) assert.equal(answer.status, 413, `${name}: ${answer.status}`);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.string({ unit: 'grapheme', maxLength: 50 }),
        hostileAmount,
        async (description, reason, amount) => {
          const path = `/instruments/${instrumentId}/purchases`;
          const body = JSON.stringify({ amount, currency: 'USD', description, reason });
          assertRefused(await send('POST', path, { body, headers: [freshKey()] }), `unicode body ${body.slice(0, 80)}`);
        },
      ),
      runs(60),
    );
    assertNoViolations();
  });

  it('FPS callbacks with arbitrary parameters: 400 (return) / 403 (IPN) / 415, never a 5xx', async () => {
    const params = fc.dictionary(
      fc.oneof(
        fc.constantFrom(
          'signature',
          'signatureVersion',
          'signatureMethod',
          'certificateUrl',
          'status',
          'callerReference',
          'callerReferenceSender',
          'transactionId',
          'transactionStatus',
          'notificationType',
        ),
        fc.string({ maxLength: 10 }),
      ),
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom(
          '2',
          'RSA-SHA1',
          'http://127.0.0.1:1/certs/PKICert.pem',
          'file:///etc/passwd',
          `${instrumentId}:sender`,
          'SUCCESS',
          'SA',
        ),
      ),
      { maxKeys: 10 },
    );
    await fc.assert(
      fc.asyncProperty(params, fc.boolean(), async (p, asIpn) => {
        const query = new URLSearchParams(p).toString();
        const answer = asIpn
          ? await send('POST', '/fps/ipn', {
              key: null,
              body: query,
              json: false,
              headers: [['Content-Type', 'application/x-www-form-urlencoded']],
            })
          : await send('GET', `/fps/return?${query}`, { key: null });
        assertRefused(answer, `${asIpn ? 'IPN' : 'return'} ${query.slice(0, 120)}`);
      }),
      runs(120),
    );
    for (const [name, path, body, type] of [
      ['IPN as JSON', '/fps/ipn', '{"notificationType":"TransactionStatus"}', 'application/json'],
      ['IPN without a body', '/fps/ipn', '', 'application/x-www-form-urlencoded'],
      ['IPN with repeated parameters', '/fps/ipn', 'signature=a&signature=b', 'application/x-www-form-urlencoded'],
      ['IPN with nested parameters', '/fps/ipn', 'a[b]=1&a[c]=2', 'application/x-www-form-urlencoded'],
    ] as const) {
      assertRefused(
        await send('POST', path, { key: null, body, json: false, headers: [['Content-Type', type]] }),
        name,
      );
    }
    for (const query of ['signature=a&signature=b', 'status[]=SA', '%zz=1', `status=${'S'.repeat(10_000)}`]) {
      assertRefused(await send('GET', `/fps/return?${query}`, { key: null }), `return ?${query.slice(0, 40)}`);
    }
    assertNoViolations();
  });

  it('storefront backend: no session, a forged session, another origin, hostile bodies', async () => {
    const forged = `${storeCookie.split('=')[0]}=${customerId}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
    const valid = JSON.stringify({ type: 'prepaid', fundingAmount: '20.00' });
    assertRefused(
      await send('POST', '/store/api/instruments', { key: null, body: valid }),
      'store create without a session',
    );
    assertRefused(
      await send('POST', '/store/api/instruments', { key: null, body: valid, headers: [['Cookie', forged]] }),
      'store create with a forged session',
    );
    assertRefused(
      await send('POST', '/store/api/instruments', {
        key: null,
        body: valid,
        headers: [
          ['Cookie', storeCookie],
          ['Origin', 'https://evil.example'],
        ],
      }),
      'store create from another origin',
    );
    assertRefused(
      await send('GET', `/store/api/instruments/${instrumentId}`, { key: null, headers: [['Cookie', storeCookie]] }),
      "another customer's instrument",
    );
    assertRefused(
      await send('POST', `/store/api/instruments/${instrumentId}/purchases`, {
        key: null,
        body: '{"itemId":"ebook"}',
        headers: [['Cookie', storeCookie], freshKey()],
      }),
      "purchase on another customer's instrument",
    );
    assertNoViolations();
  });

  it('nothing was started and nothing was charged', async () => {
    // Visibility is eventually consistent: give a stray start a moment to show.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(
      (await stack.client.workflow.count(queueQuery())).count,
      workflowsBefore,
      'no new workflow on the stack task queue',
    );
    const mine = await call(stack, 'GET', `/customers/${customerId}/instruments`);
    assert.equal(mine.body.instruments.length, 1, `only the instrument this test created: ${mine.text}`);
    assert.equal(await moneyFingerprint(stack), ledgerBefore, 'the sandbox ledger did not move');
    const after = await call(stack, 'GET', `/instruments/${instrumentId}`);
    assert.equal(after.body.state, 'active');
    assert.equal(after.body.balance.minorUnits, balanceBefore);
    assert.ok(tried >= 1000, `at least 1000 hostile inputs tried (${tried})`);
  });
});

describe('api: rate limiting per API key (api/rate-limit.ts)', function () {
  this.timeout(60_000);

  it('the limiter: a burst, then 429 problem+json with Retry-After; other keys and callbacks unaffected; tokens come back', async () => {
    let now = 1_000_000;
    const client = await testClient();
    const { app } = createApi({
      client,
      config: { ...config(), api: { ...config().api, apiKeys: [DEV_API_KEY, 'second-merchant-key'] } },
    });
    const outer = express();
    outer.use(rateLimit({ perSecond: 2, burst: 5, now: () => now }));
    outer.use(app);
    const server: Server = await new Promise((resolve) => {
      const s = outer.listen(0, '127.0.0.1', () => resolve(s));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = (key: string, path = '/instruments/ins_ratelimitedaaaaaaaaaa') =>
      fetch(`${url}${path}`, { headers: { 'x-api-key': key } });
    try {
      const first = await Promise.all(Array.from({ length: 5 }, () => get(DEV_API_KEY)));
      assert.deepEqual(
        first.map((r) => r.status),
        [404, 404, 404, 404, 404],
      );
      const limited = await get(DEV_API_KEY);
      assert.equal(limited.status, 429);
      assert.match(limited.headers.get('content-type') ?? '', PROBLEM);
      assert.equal(limited.headers.get('retry-after'), '1');
      const problem = (await limited.json()) as { code: string; status: number };
      assert.equal(problem.code, 'rate_limited');
      assert.equal(problem.status, 429);
      assert.equal((await get(`Bearer-less ${DEV_API_KEY}`)).status, 401, 'another (invalid) key has its own bucket');
      assert.equal((await get('second-merchant-key')).status, 404, 'another key is not limited');
      assert.equal((await fetch(`${url}/healthz`)).status, 200, 'service routes are not limited');
      now += 1_000;
      assert.equal((await get(DEV_API_KEY)).status, 404, 'two tokens a second come back');
      assert.equal((await get(DEV_API_KEY)).status, 404);
      assert.equal((await get(DEV_API_KEY)).status, 429);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('the API process enforces API_RATE_LIMIT_PER_SECOND / API_RATE_LIMIT_BURST (needs rateLimit mounted in api/app.ts)', async () => {
    const stack = await getStack();
    const [port] = await freePorts(1);
    const api = await spawnService({
      name: 'rate-limit-api',
      script: 'api/main.ts',
      env: {
        ...stack.env,
        API_PORT: String(port),
        API_PUBLIC_URL: `http://127.0.0.1:${port}`,
        API_RATE_LIMIT_PER_SECOND: '1',
        API_RATE_LIMIT_BURST: '3',
      },
      readyUrl: `http://127.0.0.1:${port}/readyz`,
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/instruments/ins_ratelimitedaaaaaaaaaa`, {
          headers: { 'x-api-key': stack.apiKey },
        });
        statuses.push(r.status);
        if (r.status === 429) {
          assert.match(r.headers.get('content-type') ?? '', PROBLEM);
          assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
        }
      }
      assert.ok(
        statuses.includes(429),
        `6 requests at once with a burst of 3 must meet a 429; got ${statuses.join(', ')}. Mount it in api/app.ts: see api/rate-limit.ts`,
      );
    } finally {
      await api.stop();
    }
  });
});
