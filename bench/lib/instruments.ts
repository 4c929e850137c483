// Instruments for benchmarks, made the way a merchant makes them: created through the API (or,
// where a benchmark needs per-instrument settings, started with the Temporal client as the API
// would), authorized at the sandbox CBUI without a browser (X-Sandbox-Decision: approve), the
// signed return delivered to the API's /fps/return, which verifies it and signals the workflow.
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { authorizationUrl } from '../../api/authorization';
import { config, type Config } from '../../config';
import {
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  snapshotQuery,
  workflowIdFor,
  type InstrumentInput,
  type InstrumentSnapshot,
} from '../../workflows/messages';
import { pool, sleep } from './common';
import { getNoRedirect } from './http';
import type { Stack } from './stack';

/** POST /customers/:customerId/instruments; the created instrument and its CBUI URL. */
export async function createInstrument(
  stack: Stack,
  customerId: string,
  body: Record<string, unknown>,
): Promise<{ instrumentId: string; authorizationUrl: string }> {
  const created = await stack.api.json('POST', `/customers/${customerId}/instruments`, body);
  if (created.status !== 201) throw new Error(`create instrument: HTTP ${created.status} ${created.text}`);
  return { instrumentId: created.body.instrumentId, authorizationUrl: created.body.authorizationUrl };
}

/** The buyer approves at the sandbox CBUI; the signed return goes to the API, which signals the workflow. */
export async function approve(stack: Stack, cbuiUrl: string): Promise<void> {
  const url = new URL(cbuiUrl);
  const cbui = await getNoRedirect(stack.sandboxHttp, `${url.pathname}${url.search}`, {
    'x-sandbox-decision': 'approve',
  });
  if (cbui.status !== 302 || !cbui.location)
    throw new Error(`sandbox CBUI: HTTP ${cbui.status} ${cbui.text.slice(0, 300)}`);
  const back = new URL(cbui.location);
  const returned = await getNoRedirect(stack.api, `${back.pathname}${back.search}`);
  if (returned.status !== 303) throw new Error(`/fps/return: HTTP ${returned.status} ${returned.text.slice(0, 300)}`);
}

/** The stack's API configuration, for building an instrument's CBUI URL the way the API does. */
function apiConfig(stack: Stack): Config {
  const base = config();
  return {
    ...base,
    fps: { ...base.fps, cbuiEndpoint: `${stack.sandboxUrl}/cobranded-ui/actions/start` },
    api: { ...base.api, publicUrl: stack.apiUrl },
  };
}

/**
 * Starts an instrument workflow with the Temporal client, exactly as the API's create does, but
 * with `input.settings` (the API takes none): returns its CBUI URL.
 */
export async function startInstrumentDirect(stack: Stack, input: InstrumentInput): Promise<string> {
  await stack.client.workflow.start(INSTRUMENT_WORKFLOW_TYPE, {
    workflowId: workflowIdFor(input.instrumentId),
    taskQueue: stack.taskQueue,
    args: [input],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
    typedSearchAttributes: instrumentSearchAttributes(input),
    memo: { requestFingerprint: 'bench' },
    staticSummary: instrumentStaticSummary(input),
  });
  return authorizationUrl(apiConfig(stack), input);
}

export function snapshot(stack: Stack, instrumentId: string): Promise<InstrumentSnapshot> {
  return stack.client.workflow.getHandle(workflowIdFor(instrumentId)).query(snapshotQuery);
}

/** Waits until every instrument is active with nothing pending (prepaid: the initial funding done). */
export async function waitUntilReady(
  stack: Stack,
  instrumentIds: string[],
  timeoutMs: number,
  concurrency = 16,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let waiting = instrumentIds;
  while (waiting.length > 0) {
    if (performance.now() > deadline)
      throw new Error(
        `${waiting.length} of ${instrumentIds.length} instruments not ready after ${timeoutMs} ms (e.g. ${waiting[0]})`,
      );
    const still: string[] = [];
    await pool(waiting.length, concurrency, async (i) => {
      const s = await snapshot(stack, waiting[i]).catch(() => undefined);
      if (!s || s.state !== 'active' || s.pending.length > 0) still.push(waiting[i]);
    });
    waiting = still;
    if (waiting.length) await sleep(200);
  }
}

/** How many running instruments of customers whose id starts with `customerPrefix` are in `state` (visibility; eventually consistent). */
export async function countInState(stack: Stack, state: string, customerPrefix: string): Promise<number> {
  const { count } = await stack.client.workflow.count(
    `TaskQueue = "${stack.taskQueue}" AND CustomerId STARTS_WITH "${customerPrefix}" AND InstrumentState = "${state}" AND ExecutionStatus = "Running"`,
  );
  return count;
}
