// What the instrument workflow tests share: a real sandbox process on a free port with a temporary
// data dir, a worker with the real FPS activities on the test's own task queue, the buyer's CBUI
// approval done non-interactively (signed URL -> 302 -> verified, parsed return -> signal), the
// sandbox's admin API, and a small IPN receiver that verifies and signals like the API will.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { createFpsActivities } from '../../activities/fps-activities';
import { createRecordActivities, withRecord } from '../../activities/record-activities';
import { config, DEV_ACCESS_KEY_ID, DEV_SECRET_KEY } from '../../config';
import { CallbackVerifier } from '../../fps/callback-verifier';
import { buildCbuiUrl, parseCbuiReturn, type CbuiPipeline, type CbuiRequest } from '../../fps/cbui';
import { callerReferenceFor } from '../../fps/caller-reference';
import { FpsClient } from '../../fps/client';
import { parseIpn } from '../../fps/ipn';
import { openLedger, type LedgerStore } from '../../store';
import {
  authorizationReturnedSignal,
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  snapshotQuery,
  transactionStatusChangedSignal,
  workflowIdFor,
  type AuthorizationReturn,
  type InstrumentInput,
  type InstrumentSnapshot,
} from '../../workflows/messages';
import type { instrumentWorkflow } from '../../workflows';
import { PRELOADED_WORKFLOW_MODULES, WORKFLOWS_PATH } from '../../worker/create-worker';
import { freePort, spawnService, type Service } from '../support/processes';
import { startTestWorker, testClient, uniqueTaskQueue, type TestWorker } from '../support/temporal';

export type InstrumentHandle = WorkflowHandle<typeof instrumentWorkflow>;

export const HISTORIES_DIR = path.join(__dirname, 'histories');

/** Fast timers for tests: polls every 200 ms, FPS retries after 50 ms. */
export const FAST = { pollInitialMs: 200, maxPollIntervalMs: 1_000, fpsRetryInitialMs: 50 } as const;

/** The sandbox's admin JSON API. */
export class SandboxAdmin {
  constructor(readonly url: string) {}

  async #json<T>(method: string, pathname: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}${pathname}`, {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${pathname}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  fault(spec: Record<string, unknown>) {
    return this.#json('POST', '/admin/faults', spec);
  }
  clearFaults() {
    return this.#json('DELETE', '/admin/faults');
  }
  ipn(settings: { url?: string; enabled?: boolean }) {
    return this.#json('POST', '/admin/ipn', settings);
  }
  async transactions(callerReference: string): Promise<AdminTransaction[]> {
    return (
      await this.#json<{ transactions: AdminTransaction[] }>(
        'GET',
        `/admin/transactions?callerReference=${encodeURIComponent(callerReference)}`,
      )
    ).transactions;
  }
  /** Transactions whose CallerReference starts with `<instrumentId>:` (the admin filter is exact, so filter by instrument). */
  async transactionsOfInstrument(fpsInstrumentId: string): Promise<AdminTransaction[]> {
    return (
      await this.#json<{ transactions: AdminTransaction[] }>(
        'GET',
        `/admin/transactions?instrumentId=${encodeURIComponent(fpsInstrumentId)}&limit=1000`,
      )
    ).transactions;
  }
  transaction(id: string) {
    return this.#json<AdminTransaction & { refunds: AdminTransaction[] }>(
      'GET',
      `/admin/transactions/${encodeURIComponent(id)}`,
    );
  }
  prepaid(id: string) {
    return this.#json<AdminPrepaid>('GET', `/admin/prepaid/${encodeURIComponent(id)}`);
  }
  credit(id: string) {
    return this.#json<AdminCredit>('GET', `/admin/credit/${encodeURIComponent(id)}`);
  }
  token(id: string) {
    return this.#json<{ id: string; status: string }>('GET', `/admin/tokens/${encodeURIComponent(id)}`);
  }
}

interface AdminMoney {
  amount: number;
  currency: string;
  value: string;
}
export interface AdminTransaction {
  id: string;
  operation: string;
  callerReference: string | null;
  status: string;
  amount: AdminMoney;
  settledAmount: AdminMoney;
  refundedAmount: AdminMoney;
  reservedAmount: AdminMoney;
  instrumentId: string | null;
}
export interface AdminPrepaid {
  id: string;
  balance: AdminMoney;
  availableBalance: AdminMoney;
  fundedTotal: AdminMoney;
  spentTotal: AdminMoney;
}
export interface AdminCredit {
  id: string;
  debt: AdminMoney;
  chargedTotal: AdminMoney;
  settledTotal: AdminMoney;
  writtenOffTotal: AdminMoney;
}

export interface SandboxProcess {
  service: Service;
  url: string;
  admin: SandboxAdmin;
  verifier: CallbackVerifier;
}

/** The sandbox as its own process (sandbox/main.ts) on a free port, with a fresh data dir; IPNs off unless given. */
export async function startSandbox(
  name: string,
  options: { ipnUrl?: string; pendingDelayMs?: number } = {},
): Promise<SandboxProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `sandbox-${name}-`));
  const service = await spawnService({
    name: `sandbox-${name}`,
    script: 'sandbox/main.ts',
    env: {
      SANDBOX_PORT: String(port),
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PUBLIC_URL: url,
      SANDBOX_DATA_DIR: dataDir,
      SANDBOX_IPN_URL: options.ipnUrl ?? '',
      SANDBOX_PENDING_DELAY_MS: String(options.pendingDelayMs ?? 400),
      SANDBOX_IPN_RETRY_BASE_MS: '100',
      SANDBOX_FAULTS: '',
    },
    readyUrl: `${url}/healthz`,
  });
  const verifier = new CallbackVerifier({ certificateUrlAllowlist: [`${url}/certs/`] });
  return { service, url, admin: new SandboxAdmin(url), verifier };
}

/** The real FPS activities, talking to `sandboxUrl` with the development credentials. */
export function sandboxActivities(sandboxUrl: string, timeoutMs = 5_000) {
  return createFpsActivities(
    new FpsClient({ endpoint: `${sandboxUrl}/`, accessKeyId: DEV_ACCESS_KEY_ID, secretKey: DEV_SECRET_KEY, timeoutMs }),
  );
}

/** A ledger store on a fresh SQLite file in a temporary folder (the embedded default of `npm start`). */
export function openTestLedger(): Promise<LedgerStore> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fps-ledger-'));
  return openLedger(path.join(dir, 'ledger.db'));
}

export type InstrumentWorker = TestWorker & { ledger: LedgerStore };

/**
 * An in-process worker for the instrument workflow on its own task queue, its money activities
 * recorded in `ledger` (by default a fresh SQLite ledger, closed when the worker stops).
 */
export async function startInstrumentWorker(
  sandboxUrl: string,
  taskQueue = uniqueTaskQueue('instr'),
  ledger?: LedgerStore,
): Promise<InstrumentWorker> {
  const store = ledger ?? (await openTestLedger());
  const worker = await startTestWorker({
    workflowsPath: WORKFLOWS_PATH,
    preloadModules: PRELOADED_WORKFLOW_MODULES,
    taskQueue,
    activities: { ...withRecord(sandboxActivities(sandboxUrl), store), ...createRecordActivities(store) },
  });
  return {
    ...worker,
    ledger: store,
    async stop() {
      try {
        await worker.stop();
      } finally {
        if (!ledger) await store.close();
      }
    },
  };
}

/** The worker as its own process (worker/main.ts, as `npm start` runs it), for crash tests. */
export function spawnWorkerProcess(name: string, sandboxUrl: string, taskQueue: string): Promise<Service> {
  return spawnService({
    name,
    script: 'worker/main.ts',
    env: { TEMPORAL_TASK_QUEUE: taskQueue, FPS_ENDPOINT: `${sandboxUrl}/`, FPS_TIMEOUT_MS: '10000', LOG_LEVEL: 'info' },
    readyLine: 'worker started',
    readyTimeoutMs: 60_000,
  });
}

let counter = 0;
/** A unique instrument id for one test. */
export const newInstrumentId = (prefix: string) => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;

export type InstrumentSpec = Omit<InstrumentInput, 'customerId' | 'currency' | 'instrumentId'> &
  Partial<Pick<InstrumentInput, 'customerId' | 'currency' | 'instrumentId'>>;

/** Starts an instrument workflow the way the API does (search attributes, static summary). */
export async function startInstrument(
  taskQueue: string,
  spec: InstrumentSpec,
  options: { workflowTaskTimeout?: number } = {},
): Promise<{ handle: InstrumentHandle; input: InstrumentInput }> {
  const client = await testClient();
  const input: InstrumentInput = {
    instrumentId: spec.instrumentId ?? newInstrumentId(spec.type),
    customerId: spec.customerId ?? `cust-${counter}`,
    currency: spec.currency ?? 'USD',
    ...spec,
  };
  const handle = await client.workflow.start<typeof instrumentWorkflow>(INSTRUMENT_WORKFLOW_TYPE, {
    taskQueue,
    workflowId: workflowIdFor(input.instrumentId),
    args: [input],
    typedSearchAttributes: instrumentSearchAttributes(input),
    staticSummary: instrumentStaticSummary(input),
    workflowTaskTimeout: options.workflowTaskTimeout,
  });
  return { handle, input };
}

const PIPELINE: Record<InstrumentInput['type'], CbuiPipeline> = {
  prepaid: 'SetupPrepaid',
  postpaid: 'SetupPostpaid',
  'single-use': 'SingleUse',
};

/**
 * The buyer approves (or aborts) the CBUI pipeline without a browser: GET the signed CBUI URL with
 * X-Sandbox-Decision, take the 302's Location, verify its signature, parse it, signal the workflow.
 */
export async function authorize(
  sandbox: SandboxProcess,
  handle: InstrumentHandle,
  input: InstrumentInput,
  decision: 'approve' | 'abort' = 'approve',
): Promise<AuthorizationReturn> {
  const money = (amount: number) => ({ amount, currency: input.currency });
  const common = {
    endpoint: `${sandbox.url}/cobranded-ui/actions/start`,
    callerKey: DEV_ACCESS_KEY_ID,
    secretKey: DEV_SECRET_KEY,
    returnUrl: `http://127.0.0.1:9/fps/return?instrument=${encodeURIComponent(input.instrumentId)}`,
    paymentReason: `test ${input.type}`,
  };
  const id = input.instrumentId;
  const request: CbuiRequest =
    input.type === 'prepaid'
      ? {
          ...common,
          pipeline: 'SetupPrepaid',
          callerReferenceSender: callerReferenceFor(id, 'sender'),
          callerReferenceFunding: callerReferenceFor(id, 'funding'),
          fundingAmount: money(input.fundingAmount!),
        }
      : input.type === 'postpaid'
        ? {
            ...common,
            pipeline: 'SetupPostpaid',
            callerReferenceSender: callerReferenceFor(id, 'sender'),
            callerReferenceSettlement: callerReferenceFor(id, 'settlement'),
            creditLimit: money(input.creditLimit!),
            globalAmountLimit: money(input.globalAmountLimit ?? input.creditLimit! * 10),
          }
        : {
            ...common,
            pipeline: 'SingleUse',
            callerReference: callerReferenceFor(id, 'authorize'),
            transactionAmount: money(input.amount!),
          };
  const res = await fetch(buildCbuiUrl(request), { headers: { 'X-Sandbox-Decision': decision }, redirect: 'manual' });
  assert.equal(res.status, 302, `CBUI answered ${res.status}: ${await res.text()}`);
  const location = new URL(res.headers.get('location')!);
  const params = Object.fromEntries(location.searchParams);
  const verification = await sandbox.verifier.verify({
    httpMethod: 'GET',
    urlEndPoint: `${location.origin}${location.pathname}`,
    params,
  });
  assert.deepEqual(verification, { ok: true }, 'the CBUI return must verify');
  const ret = parseCbuiReturn(PIPELINE[input.type], params) as AuthorizationReturn;
  await handle.signal(authorizationReturnedSignal, ret);
  return ret;
}

export const snapshotOf = (handle: InstrumentHandle): Promise<InstrumentSnapshot> => handle.query(snapshotQuery);

/** Polls the snapshot query until `predicate` holds. */
export async function waitForSnapshot(
  handle: InstrumentHandle,
  predicate: (s: InstrumentSnapshot) => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<InstrumentSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let last: InstrumentSnapshot | undefined;
  while (Date.now() < deadline) {
    try {
      last = await snapshotOf(handle);
      if (predicate(last)) return last;
    } catch {
      // The workflow may be between runs (continue-as-new).
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last snapshot: ${JSON.stringify(last)}`);
}

export const waitForState = (handle: InstrumentHandle, state: string, timeoutMs = 10_000) =>
  waitForSnapshot(handle, (s) => s.state === state, timeoutMs, `state ${state}`);

/** Runs `fn`, which must fail with a WorkflowUpdateFailedError whose ApplicationFailure has `type`. */
export async function expectRejection(
  fn: () => Promise<unknown>,
  type: string,
  message?: RegExp,
): Promise<ApplicationFailure> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof WorkflowUpdateFailedError, `expected WorkflowUpdateFailedError, got ${String(err)}`);
    const cause = err.cause;
    assert.ok(cause instanceof ApplicationFailure, `expected an ApplicationFailure cause, got ${String(cause)}`);
    assert.equal(cause.type, type, `rejection type (message: ${cause.message})`);
    if (message) assert.match(cause.message, message);
    return cause;
  }
  assert.fail(`expected a ${type} rejection`);
}

/** Saves a workflow's history for the replay test, unless one is already committed (UPDATE_HISTORIES=1 overwrites). */
export async function saveHistory(handle: InstrumentHandle, name: string): Promise<void> {
  const file = path.join(HISTORIES_DIR, `${name}.json`);
  if (existsSync(file) && process.env.UPDATE_HISTORIES !== '1') return;
  mkdirSync(HISTORIES_DIR, { recursive: true });
  const history = await handle.fetchHistory();
  // Failure stack traces name this checkout's absolute path: keep the committed files machine-neutral.
  const json = JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)
    .split(`${config().root}${path.sep}`)
    .join('./');
  writeFileSync(file, `${json}\n`);
}

export const readHistory = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

/**
 * The IPN endpoint the API will have, in miniature: verify the POSTed notification with fps/,
 * parse it, find the instrument from its CallerReference (`<instrumentId>:...`), signal it.
 */
export async function startIpnReceiver(
  sandbox: SandboxProcess,
  client?: Client,
): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  const temporal = client ?? (await testClient());
  let received = 0;
  let url = '';
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      void (async () => {
        const params = Object.fromEntries(new URLSearchParams(body));
        const verification = await sandbox.verifier.verify({ httpMethod: 'POST', urlEndPoint: url, params });
        if (!verification.ok) {
          res.writeHead(403).end(verification.reason);
          return;
        }
        const ipn = parseIpn(params);
        received++;
        if (ipn.notificationType === 'TransactionStatus') {
          const instrumentId = ipn.callerReference.split(':')[0];
          try {
            await temporal.workflow.getHandle(workflowIdFor(instrumentId)).signal(transactionStatusChangedSignal, {
              notificationType: 'TransactionStatus',
              transactionId: ipn.transactionId,
              transactionStatus: ipn.transactionStatus,
              callerReference: ipn.callerReference,
              statusCode: ipn.statusCode,
              statusMessage: ipn.statusMessage,
              operation: ipn.operation,
            });
          } catch {
            // Not one of ours, or already finished: acknowledged either way.
          }
        }
        res.writeHead(200).end('ok');
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fps/ipn`;
  return {
    url,
    received: () => received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The environment of a workflow test file: a sandbox process named `name` and an in-process
 * instrument worker talking to it, started before the file's tests and stopped after them.
 * Read `env.sandbox` and `env.worker` inside tests (they exist once `before` has run).
 */
export function useInstrumentEnv(name: string): { sandbox: SandboxProcess; worker: InstrumentWorker } {
  const env = {} as { sandbox: SandboxProcess; worker: InstrumentWorker };
  before(async function () {
    this.timeout(120_000);
    env.sandbox = await startSandbox(name);
    env.worker = await startInstrumentWorker(env.sandbox.url);
  });
  after(async () => {
    await env.worker?.stop();
    await env.sandbox?.service.stop();
  });
  return env;
}
