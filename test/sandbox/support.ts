// Shared helpers of the sandbox tests: a real sandbox process per test file (own port, own temp
// data dir), an FPS client bound to it, CBUI approval through the X-Sandbox-Decision header, a
// loopback IPN receiver, and the admin JSON views.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import type { FpsAction, FpsRequest } from '../../fps/actions';
import { buildCbuiUrl, type CbuiRequest } from '../../fps/cbui';
import { FpsClient, type FpsCallResult } from '../../fps/client';
import { FpsError } from '../../fps/errors';
import { parseDecimal, type Money } from '../../fps/money';
import { freePort, spawnService, type Service } from '../support/processes';

/** A second merchant, to check that one caller cannot touch another's tokens and transactions. */
export const OTHER_ACCESS_KEY_ID = 'AKIAOTHERMERCHANT001';
export const OTHER_SECRET_KEY = 'other-merchant-secret-key-0000000000002';
export const CBUI_PATH = '/cobranded-ui/actions/start';

export const usd = (value: string): Money => ({ amount: parseDecimal(value, 'USD'), currency: 'USD' });

/** A CallerReference no other test (or earlier run) has used. */
export const ref = (label: string) => `${label}:${randomUUID()}`;

export interface TestSandbox {
  service: Service;
  /** http://127.0.0.1:port */
  url: string;
  dataDir: string;
  /** A client for the main dev merchant (POST, HmacSHA256). */
  fps: FpsClient;
  client(options?: Partial<ConstructorParameters<typeof FpsClient>[0]>): FpsClient;
  call<A extends FpsAction>(action: A, request: FpsRequest<A>): Promise<FpsCallResult<A>>;
  /** GET /admin/... as JSON. */
  admin<T = any>(pathAndQuery: string, init?: RequestInit): Promise<T>;
  stop(): Promise<void>;
}

export interface StartOptions {
  name: string;
  env?: Record<string, string | undefined>;
}

export async function startSandbox(options: StartOptions): Promise<TestSandbox> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `fps-sandbox-${options.name}-`));
  const service = await spawnService({
    name: `sandbox-${options.name}`,
    script: 'sandbox/main.ts',
    readyUrl: `${url}/healthz`,
    env: {
      SANDBOX_PORT: String(port),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: url,
      SANDBOX_DATA_DIR: dataDir,
      SANDBOX_ACCESS_KEYS: `${DEV_ACCESS_KEY_ID}:${DEV_SECRET_KEY},${OTHER_ACCESS_KEY_ID}:${OTHER_SECRET_KEY}`,
      SANDBOX_IPN_URL: '',
      SANDBOX_PENDING_DELAY_MS: '300',
      SANDBOX_IPN_RETRY_BASE_MS: '100',
      SANDBOX_IPN_RETRY_MAX_MS: '1000',
      SANDBOX_FAULTS: '',
      LOG_LEVEL: 'info',
      ...options.env,
    },
  });
  const client = (overrides: Partial<ConstructorParameters<typeof FpsClient>[0]> = {}) =>
    new FpsClient({
      endpoint: `${url}/`,
      accessKeyId: DEV_ACCESS_KEY_ID,
      secretKey: DEV_SECRET_KEY,
      timeoutMs: 5_000,
      ...overrides,
    });
  const fps = client();
  return {
    service,
    url,
    dataDir,
    fps,
    client,
    call: (action, request) => fps.call(action, request),
    async admin(pathAndQuery, init) {
      const response = await fetch(`${url}${pathAndQuery}`, init);
      const text = await response.text();
      assert.ok(response.ok, `${init?.method ?? 'GET'} ${pathAndQuery} -> ${response.status} ${text}`);
      return JSON.parse(text);
    },
    async stop() {
      await service.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Awaits an FPS call that must fail with `code`; returns the error. */
export async function expectFpsError(promise: Promise<unknown>, code: string): Promise<FpsError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof FpsError, `expected FpsError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected FpsError ${code}, but the call succeeded`);
}

export type PipelineInput =
  | { pipeline: 'SingleUse'; callerReference: string; transactionAmount: Money }
  | { pipeline: 'SetupPrepaid'; callerReferenceSender: string; callerReferenceFunding: string; fundingAmount: Money }
  | {
      pipeline: 'SetupPostpaid';
      callerReferenceSender: string;
      callerReferenceSettlement: string;
      creditLimit: Money;
      globalAmountLimit: Money;
    };

export const RETURN_URL = 'https://shop.example.com/fps/return';

/** The signed CBUI start URL for the dev merchant (built with fps/cbui.ts). */
export function cbuiUrl(sb: Pick<TestSandbox, 'url'>, input: PipelineInput, extra: Partial<CbuiRequest> = {}): string {
  return buildCbuiUrl({
    endpoint: `${sb.url}${CBUI_PATH}`,
    callerKey: DEV_ACCESS_KEY_ID,
    secretKey: DEV_SECRET_KEY,
    returnUrl: RETURN_URL,
    paymentReason: 'Sandbox test purchase',
    ...input,
    ...extra,
  } as CbuiRequest);
}

export interface CbuiRedirect {
  status: number;
  location: URL;
  /** The return URL's query parameters. */
  params: Record<string, string>;
}

/** GET the start URL with X-Sandbox-Decision and read the redirect. */
export async function decideCbui(startUrl: string, decision: 'approve' | 'abort' = 'approve'): Promise<CbuiRedirect> {
  const response = await fetch(startUrl, { headers: { 'x-sandbox-decision': decision }, redirect: 'manual' });
  const body = await response.text();
  assert.equal(response.status, 302, `CBUI answered ${response.status}: ${body.slice(0, 300)}`);
  const location = new URL(response.headers.get('location')!);
  return { status: response.status, location, params: Object.fromEntries(location.searchParams) };
}

export async function approveSingleUse(sb: TestSandbox, amount: Money, callerReference = ref('su')) {
  const { params } = await decideCbui(
    cbuiUrl(sb, { pipeline: 'SingleUse', callerReference, transactionAmount: amount }),
  );
  assert.equal(params.status, 'SC', params.errorMessage);
  return { tokenId: params.tokenID, callerReference };
}

export async function approvePrepaid(sb: TestSandbox, fundingAmount: Money, sender = ref('prepaid-sender')) {
  const { params } = await decideCbui(
    cbuiUrl(sb, {
      pipeline: 'SetupPrepaid',
      callerReferenceSender: sender,
      callerReferenceFunding: `${sender}:funding`,
      fundingAmount,
    }),
  );
  assert.equal(params.status, 'SC', params.errorMessage);
  return {
    instrumentId: params.prepaidInstrumentID,
    fundingTokenId: params.fundingTokenID,
    senderTokenId: params.prepaidSenderTokenID,
    callerReferenceSender: sender,
  };
}

/** SetupPrepaid approved and funded with `funded` (the funding limit is `limit`). */
export async function fundedPrepaid(sb: TestSandbox, funded: Money, limit: Money = funded) {
  const prepaid = await approvePrepaid(sb, limit);
  const result = await sb.call('FundPrepaid', {
    prepaidInstrumentId: prepaid.instrumentId,
    senderTokenId: prepaid.fundingTokenId,
    fundingAmount: funded,
    callerReference: ref('fund'),
  });
  assert.equal(result.transactionStatus, 'Success');
  return prepaid;
}

export async function approvePostpaid(
  sb: TestSandbox,
  creditLimit: Money,
  globalAmountLimit: Money,
  sender = ref('postpaid-sender'),
) {
  const { params } = await decideCbui(
    cbuiUrl(sb, {
      pipeline: 'SetupPostpaid',
      callerReferenceSender: sender,
      callerReferenceSettlement: `${sender}:settlement`,
      creditLimit,
      globalAmountLimit,
    }),
  );
  assert.equal(params.status, 'SC', params.errorMessage);
  return {
    instrumentId: params.creditInstrumentID,
    senderTokenId: params.creditSenderTokenID,
    settlementTokenId: params.settlementTokenID,
    callerReferenceSender: sender,
  };
}

export interface ReceivedIpn {
  at: number;
  path: string;
  body: string;
  params: Record<string, string>;
  answered: number;
}

/** A loopback HTTP server that records IPNs and answers `statuses` in turn (then 200). */
export async function ipnReceiver(statuses: number[] = []) {
  const received: ReceivedIpn[] = [];
  const waiters: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const answered = statuses[received.length] ?? 200;
      received.push({
        at: Date.now(),
        path: req.url ?? '',
        body,
        params: Object.fromEntries(new URLSearchParams(body)),
        answered,
      });
      res.statusCode = answered;
      res.end(answered === 200 ? 'OK' : 'not now');
      waiters.splice(0).forEach((w) => w());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fps/ipn`;
  return {
    url,
    received,
    /** Resolves once `predicate` holds for the received IPNs. */
    async waitFor(predicate: (all: ReceivedIpn[]) => boolean, timeoutMs = 10_000): Promise<ReceivedIpn[]> {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(received)) {
        const left = deadline - Date.now();
        if (left <= 0)
          assert.fail(
            `IPNs not as expected after ${timeoutMs} ms: ${JSON.stringify(
              received.map((r) => r.params),
              null,
              1,
            )}`,
          );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return received;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Polls `probe` until it returns a value that `done` accepts. */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      assert.fail(`condition not reached after ${timeoutMs} ms; last value ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
