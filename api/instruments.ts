// The merchant API's view of instrument workflows: start one, query it, list a customer's, send it
// Updates (with bounded retries when the server is busy) and signals. Every Temporal error leaves
// here as a ProblemError (api/temporal-errors.ts) or as an unexpected error for a 500.
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { Logger } from '../config/logger';
import type { Config } from '../config';
import {
  CustomerIdKey,
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentIdFromWorkflowId,
  instrumentSearchAttributes,
  instrumentStaticSummary,
  InstrumentStateKey,
  InstrumentTypeKey,
  SEARCH_ATTRIBUTES,
  snapshotQuery,
  operationResultQuery,
  workflowIdFor,
  type InstrumentInput,
  type InstrumentSnapshot,
  type InstrumentType,
  type OperationResult,
} from '../workflows/messages';
import { ProblemError } from './problem';
import { isResourceExhausted, isUnprocessedUpdate, isWorkflowNotFound, temporalProblem } from './temporal-errors';

/** Kept in the workflow's memo: what /fps/return needs, and what a replayed create is compared with. */
export interface InstrumentMemo {
  returnTo?: string;
  requestFingerprint: string;
}

export interface InstrumentDescription {
  instrumentId: string;
  workflowId: string;
  type: InstrumentType | undefined;
  state: string | undefined;
  customerId: string | undefined;
  status: string;
  memo: Partial<InstrumentMemo>;
}

export interface InstrumentsOptions {
  /** Longest an Update or query may take before the caller gets 504 (and retries with the same key). */
  operationTimeoutMs: number;
  /** Retries when the server refuses an Update for too many in flight (RESOURCE_EXHAUSTED) or drops it unprocessed. */
  busyRetries?: number;
  busyBackoffMs?: number;
  /** Told before each busy retry (metrics): 'resource_exhausted' or 'unprocessed'. */
  onBusyRetry?: (reason: 'resource_exhausted' | 'unprocessed') => void;
}

export class Instruments {
  readonly #busyRetries: number;
  readonly #busyBackoffMs: number;

  constructor(
    private readonly client: Client,
    private readonly cfg: Config,
    private readonly logger: Logger,
    private readonly options: InstrumentsOptions,
  ) {
    this.#busyRetries = options.busyRetries ?? 4;
    this.#busyBackoffMs = options.busyBackoffMs ?? 100;
  }

  handle(instrumentId: string): WorkflowHandle {
    return this.client.workflow.getHandle(workflowIdFor(instrumentId));
  }

  /**
   * Starts the instrument's workflow. Returns false (and starts nothing) when the workflow already
   * exists with the same request fingerprint — a retried create; a different request under the
   * same id is a 422.
   */
  async start(input: InstrumentInput, memo: InstrumentMemo): Promise<{ created: boolean }> {
    const workflowId = workflowIdFor(input.instrumentId);
    try {
      await this.client.workflow.start(INSTRUMENT_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: this.cfg.temporal.taskQueue,
        args: [input],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: instrumentSearchAttributes(input),
        memo: { ...memo },
        staticSummary: instrumentStaticSummary(input),
        staticDetails: `Instrument \`${input.instrumentId}\` of customer \`${input.customerId}\`${input.description ? `: ${input.description}` : ''}`,
      });
      return { created: true };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw temporalProblem(err, input.instrumentId);
      const existing = await this.describe(input.instrumentId);
      if (existing.memo.requestFingerprint !== memo.requestFingerprint) {
        throw new ProblemError(
          422,
          'idempotency_key_reused',
          'this Idempotency-Key already created an instrument with different parameters',
          {
            field: 'Idempotency-Key',
          },
        );
      }
      return { created: false };
    }
  }

  async describe(instrumentId: string): Promise<InstrumentDescription> {
    try {
      const d = await this.withTimeout(() => this.handle(instrumentId).describe());
      if (d.type !== INSTRUMENT_WORKFLOW_TYPE)
        throw new ProblemError(404, 'instrument_not_found', `no instrument ${instrumentId}`);
      return {
        instrumentId,
        workflowId: d.workflowId,
        type: d.typedSearchAttributes.get(InstrumentTypeKey) as InstrumentType | undefined,
        state: d.typedSearchAttributes.get(InstrumentStateKey),
        customerId: d.typedSearchAttributes.get(CustomerIdKey),
        status: d.status.name,
        memo: (d.memo ?? {}) as Partial<InstrumentMemo>,
      };
    } catch (err) {
      throw temporalProblem(err, instrumentId);
    }
  }

  async snapshot(instrumentId: string): Promise<InstrumentSnapshot> {
    try {
      return await this.withTimeout(() => this.handle(instrumentId).query(snapshotQuery));
    } catch (err) {
      throw temporalProblem(err, instrumentId);
    }
  }

  /**
   * Runs one Update to completion. `operationId` is the Update id: the same id returns the same
   * result (the workflow also remembers processed ids across continue-as-new).
   */
  async operate<Req>(
    instrumentId: string,
    update: UpdateDefinition<OperationResult, [Req]>,
    request: Req,
    operationId: string,
  ): Promise<OperationResult> {
    // Always through the workflow, never answered from the record here: the record's row is written
    // by the activity before the workflow task that counts it is durable, so a row may name an
    // operation the workflow never applied (a lost task: server or database restart, worker crash);
    // the Update re-runs it with the same CallerReference. The workflow itself asks the record about
    // ids beyond its window.
    const handle = this.handle(instrumentId);
    for (let attempt = 0; ; attempt++) {
      let result: OperationResult;
      try {
        result = await this.withTimeout(() => handle.executeUpdate(update, { args: [request], updateId: operationId }));
      } catch (err) {
        const busy = isResourceExhausted(err)
          ? 'too many in flight'
          : isUnprocessedUpdate(err)
            ? 'not processed by a workflow task'
            : undefined;
        if (busy && attempt < this.#busyRetries) {
          const wait = this.#busyBackoffMs * 2 ** attempt * (0.5 + Math.random());
          this.logger.warn(
            { instrumentId, operationId, attempt, waitMs: Math.round(wait), reason: busy },
            'update refused, retrying with the same id',
          );
          this.options.onBusyRetry?.(isResourceExhausted(err) ? 'resource_exhausted' : 'unprocessed');
          await sleep(wait);
          continue;
        }
        if (isWorkflowNotFound(err)) await this.throwIfClosed(instrumentId);
        throw temporalProblem(err, instrumentId);
      }
      // Temporal answers a known Update id with the first result, whatever was sent this time:
      // an id reused for another operation or amount is the caller's mistake, not a replay.
      const amount = (request as { amount?: number }).amount;
      if (result.operation !== update.name || (amount !== undefined && result.amount !== amount)) {
        throw new ProblemError(
          409,
          'idempotency_key_reused',
          `id ${operationId} was already used for a ${result.operation} of ${result.amount} minor units`,
          {
            field: 'Idempotency-Key',
          },
        );
      }
      // Pending when the Update answered, maybe decided since (the Update keeps its first answer,
      // even for a retry with the same id): the operation's current record says.
      if (result.outcome === 'pending')
        return (await this.operationResult(instrumentId, result.operation, result.id)) ?? result;
      return result;
    }
  }

  /** The current result of one operation by its id, or null when the instrument has no record of it. */
  async operationResult(
    instrumentId: string,
    operation: OperationResult['operation'],
    id: string,
  ): Promise<OperationResult | null> {
    try {
      return await this.withTimeout(() => this.handle(instrumentId).query(operationResultQuery, { operation, id }));
    } catch (err) {
      throw temporalProblem(err, instrumentId);
    }
  }

  async signal<Arg>(instrumentId: string, signal: SignalDefinition<[Arg]>, arg: Arg): Promise<void> {
    try {
      await this.withTimeout(() => this.handle(instrumentId).signal(signal, arg));
    } catch (err) {
      throw temporalProblem(err, instrumentId);
    }
  }

  /** The customer's instruments, newest first (visibility is eventually consistent: a new one may lag). */
  async listForCustomer(customerId: string, limit = 100) {
    // customerId is validated against a pattern without quotes or backslashes; escape anyway.
    const literal = customerId.replace(/[\\"]/g, '\\$&');
    const query = `WorkflowType = "${INSTRUMENT_WORKFLOW_TYPE}" AND ${SEARCH_ATTRIBUTES.CustomerId} = "${literal}"`;
    const found = [];
    try {
      for await (const info of this.client.workflow.list({ query, pageSize: limit })) {
        found.push(info);
        if (found.length >= limit) break;
      }
    } catch (err) {
      throw temporalProblem(err);
    }
    found.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
    return found.map((info) => ({
      instrumentId: instrumentIdFromWorkflowId(info.workflowId),
      workflowId: info.workflowId,
      type: info.typedSearchAttributes.get(InstrumentTypeKey),
      state: info.typedSearchAttributes.get(InstrumentStateKey),
      status: info.status.name,
      createdAt: info.startTime.toISOString(),
    }));
  }

  /** Is the workflow service reachable? */
  async ready(): Promise<boolean> {
    await this.client.connection.withDeadline(Date.now() + 2_000, () => this.client.workflowService.getSystemInfo({}));
    return true;
  }

  /** An Update to a closed workflow fails as "not found"; tell the caller the instrument is closed instead. */
  private async throwIfClosed(instrumentId: string): Promise<void> {
    let status: string;
    try {
      status = (await this.describe(instrumentId)).status;
    } catch {
      return;
    }
    if (status !== 'RUNNING')
      throw new ProblemError(
        409,
        'instrument_closed',
        `instrument ${instrumentId} is closed (${status.toLowerCase()})`,
      );
  }

  private withTimeout<T>(fn: () => Promise<T>): Promise<T> {
    return this.client.connection.withDeadline(Date.now() + this.options.operationTimeoutMs, fn);
  }
}
