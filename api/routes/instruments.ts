// Instrument routes of the merchant API: create (start the workflow, hand back the CBUI URL),
// read (snapshot query), list (visibility), change balance rules (PATCH, an Update), and the money
// operations (Updates).
import { createHash } from 'node:crypto';
import type { Request, Response } from 'express';
import type { UpdateDefinition } from '@temporalio/common';
import type { ZodType } from 'zod';
import {
  captureUpdate,
  closeUpdate,
  fundUpdate,
  INITIAL_INSTRUMENT_STATE,
  purchaseUpdate,
  refundUpdate,
  setBalanceRulesUpdate,
  settleUpdate,
  voidUpdate,
  workflowIdFor,
  writeOffUpdate,
  type BalanceRulesChange,
  type InstrumentInput,
  type InstrumentSnapshot,
  type OperationResult,
} from '../../workflows/messages';
import { authorizationUrl } from '../authorization';
import { idempotencyKey, type ApiContext } from '../context';
import { instrumentIdForKey, newId } from '../ids';
import { ProblemError, validationFailed } from '../problem';
import { instrumentLinks, instrumentPath, money, renderOperation, renderSnapshot } from '../render';
import { route, type RouteSpec } from '../route';
import { temporalProblem } from '../temporal-errors';
import * as s from '../schemas';
import { minorUnits, optionalMinorUnits, parseWith } from '../validate';

const problems = {
  401: 'Missing or invalid API key',
  404: 'Unknown instrument',
  422: 'Invalid request (the problem names the field)',
};
const operationProblems = {
  ...problems,
  402: 'Declined by FPS (code payment_declined, declineCode e.g. TransactionDenied, InsufficientBalance); the operation result is in `operation`',
  409: 'Not allowed in the instrument state (invalid_state), instrument closed, or the id reused with other parameters',
  503: 'Too many operations in flight or Temporal unreachable; retry with the same Idempotency-Key',
  504: 'Still running; retry with the same Idempotency-Key to get the result',
};

// ---- create ----------------------------------------------------------------------------------

/** A path on this site, or an absolute URL on publicUrl's origin or an allow-listed one; never `//host`. */
function checkReturnTo(ctx: ApiContext, returnTo: string | undefined): string | undefined {
  if (returnTo === undefined) return undefined;
  if (/^\/(?![/\\])/.test(returnTo)) return returnTo;
  let url: URL;
  try {
    url = new URL(returnTo);
  } catch {
    throw validationFailed('returnTo', 'returnTo: must be a path on this site or an absolute http(s) URL');
  }
  const allowed = [new URL(ctx.cfg.api.publicUrl).origin, ...ctx.cfg.api.returnToOrigins];
  if (!allowed.includes(url.origin))
    throw validationFailed('returnTo', `returnTo: origin ${url.origin} is not allowed (API_RETURN_TO_ORIGINS)`);
  return url.href;
}

export interface CreatedInstrument {
  status: 200 | 201;
  body: {
    instrumentId: string;
    workflowId: string;
    customerId: string;
    type: InstrumentInput['type'];
    state: string;
    authorizationUrl: string;
    links: ReturnType<typeof instrumentLinks>;
  };
}

/** Shared by the API route and the storefront backend. */
export async function createInstrument(
  ctx: ApiContext,
  customerId: string,
  request: s.CreateInstrumentRequest,
  key?: string,
): Promise<CreatedInstrument> {
  const { currency } = request;
  const returnTo = checkReturnTo(ctx, request.returnTo);
  const instrumentId = key ? instrumentIdForKey(customerId, key) : newId('ins');
  const input: InstrumentInput = {
    instrumentId,
    customerId,
    type: request.type,
    currency,
    description: request.description,
  };
  switch (request.type) {
    case 'prepaid': {
      input.fundingAmount = minorUnits(request.fundingAmount, currency, 'fundingAmount');
      const rules = balanceRulesChange(request, currency);
      if (rules.lowBalanceThreshold || rules.autoTopUp) input.balanceRules = rules;
      break;
    }
    case 'postpaid':
      input.creditLimit = minorUnits(request.creditLimit, currency, 'creditLimit');
      input.globalAmountLimit = minorUnits(request.globalAmountLimit, currency, 'globalAmountLimit');
      if (input.globalAmountLimit < input.creditLimit) {
        throw new ProblemError(422, 'invalid_amount', 'globalAmountLimit: must be at least the creditLimit', {
          field: 'globalAmountLimit',
        });
      }
      break;
    case 'single-use':
      input.amount = minorUnits(request.amount, currency, 'amount');
      input.singleUseMode = request.singleUseMode;
      break;
  }
  for (const name of Object.keys(input) as Array<keyof InstrumentInput>)
    if (input[name] === undefined) delete input[name];
  const requestFingerprint = createHash('sha256').update(JSON.stringify({ customerId, request })).digest('base64url');
  const { created } = await ctx.instruments.start(
    input,
    returnTo ? { returnTo, requestFingerprint } : { requestFingerprint },
  );
  ctx.logger.info(
    { instrumentId, customerId, type: input.type, created },
    created ? 'instrument started' : 'instrument create replayed',
  );
  const workflowId = workflowIdFor(instrumentId);
  return {
    status: created ? 201 : 200,
    body: {
      instrumentId,
      workflowId,
      customerId,
      type: input.type,
      state: INITIAL_INSTRUMENT_STATE,
      authorizationUrl: authorizationUrl(ctx.cfg, input),
      links: instrumentLinks(ctx.cfg, instrumentId, workflowId),
    },
  };
}

// ---- balance rules -----------------------------------------------------------------------------

/** Balance rules from the wire (decimal strings) into minor units; null (remove) and absent (keep) pass through. */
function balanceRulesChange(body: s.UpdateInstrumentRequest, currency: string): BalanceRulesChange {
  const change: BalanceRulesChange = {};
  if (body.lowBalanceThreshold !== undefined)
    change.lowBalanceThreshold =
      body.lowBalanceThreshold === null ? null : minorUnits(body.lowBalanceThreshold, currency, 'lowBalanceThreshold');
  if (body.autoTopUp !== undefined)
    change.autoTopUp =
      body.autoTopUp === null
        ? null
        : {
            below: minorUnits(body.autoTopUp.below, currency, 'autoTopUp.below'),
            amount: minorUnits(body.autoTopUp.amount, currency, 'autoTopUp.amount'),
          };
  return change;
}

/** The snapshot as GET /instruments/{id} renders it, with the prepaid balance rules. */
function renderInstrument(ctx: ApiContext, snapshot: InstrumentSnapshot) {
  const rules = snapshot.balanceRules;
  const c = snapshot.currency;
  return {
    ...renderSnapshot(ctx.cfg, snapshot, workflowIdFor(snapshot.instrumentId)),
    balanceRules: rules && {
      lowBalanceThreshold: rules.lowBalanceThreshold === undefined ? undefined : money(rules.lowBalanceThreshold, c),
      autoTopUp: rules.autoTopUp && {
        below: money(rules.autoTopUp.below, c),
        amount: money(rules.autoTopUp.amount, c),
      },
      lowBalanceCrossings: rules.lowBalanceCrossings,
      autoTopUpCrossings: rules.autoTopUpCrossings,
    },
  };
}

// ---- operations ------------------------------------------------------------------------------

/** An Update's outcome as HTTP: approved → 200/201, pending → 202, declined → 402 problem. */
export function sendOperationResult(
  res: Response,
  instrumentId: string,
  result: OperationResult,
  approvedStatus: 200 | 201,
): void {
  const body = renderOperation(instrumentId, result);
  if (result.outcome === 'declined') {
    throw new ProblemError(402, 'payment_declined', result.reason?.message ?? 'declined by FPS', {
      declineCode: result.reason?.code,
      operation: body,
    });
  }
  if (result.outcome === 'pending') {
    // A purchase is followed by its own URL; other operations through the instrument.
    const statusUrl = 'self' in body.links && body.links.self ? body.links.self : body.links.instrument;
    res
      .status(202)
      .location(statusUrl)
      .json({ ...body, statusUrl });
    return;
  }
  res.status(approvedStatus).json(body);
}

/** Amount-optional operations carry no currency into the workflow: check it against the instrument's. */
async function checkCurrency(ctx: ApiContext, instrumentId: string, body: { amount?: string; currency?: string }) {
  const amount = optionalMinorUnits(body);
  if (amount) {
    const { currency } = await ctx.instruments.snapshot(instrumentId);
    if (currency !== amount.currency) {
      throw new ProblemError(422, 'invalid_currency', `currency: the instrument is in ${currency}`, {
        field: 'currency',
      });
    }
  }
  return amount?.amount;
}

interface OperationSpec<Body, Req> {
  path: string;
  operationId: string;
  summary: string;
  description: string;
  schema: ZodType<Body>;
  /** Whether the body must be sent (an empty body is {}). */
  bodyRequired: boolean;
  update: UpdateDefinition<OperationResult, [Req]>;
  /** Prefix of generated operation ids when no Idempotency-Key is sent. */
  idPrefix: string;
  approvedStatus: 200 | 201;
  toRequest: (ctx: ApiContext, instrumentId: string, body: Body, operationId: string) => Promise<Req> | Req;
}

function operationRoute<Body, Req>(ctx: ApiContext, spec: OperationSpec<Body, Req>): RouteSpec {
  return route({
    method: 'post',
    path: `/instruments/:instrumentId/${spec.path}`,
    operationId: spec.operationId,
    summary: spec.summary,
    description: spec.description,
    tag: 'operations',
    security: 'apiKey',
    params: { instrumentId: s.InstrumentId },
    idempotencyKey: true,
    body: { schema: spec.schema, required: spec.bodyRequired },
    responses: {
      [spec.approvedStatus]: { description: 'Approved', schema: s.OperationResultSchema },
      202: {
        description: 'Pending at FPS; follow the instrument (Location) for the outcome',
        schema: s.OperationResultSchema,
      },
      ...operationProblems,
    },
    handler: async (req, res) => {
      const instrumentId = instrumentIdParam(req, res);
      const body = parseWith(spec.schema, req.body);
      const operationId = idempotencyKey(req) ?? newId(spec.idPrefix);
      res.locals.operationId = operationId;
      const request = await spec.toRequest(ctx, instrumentId, body, operationId);
      const result = await ctx.instruments.operate(instrumentId, spec.update, request, operationId);
      sendOperationResult(res, instrumentId, result, spec.approvedStatus);
    },
  });
}

export function instrumentIdParam(req: Request, res: Response): string {
  const instrumentId = req.params.instrumentId;
  if (typeof instrumentId !== 'string' || !s.InstrumentId.safeParse(instrumentId).success) {
    throw new ProblemError(404, 'instrument_not_found', `no instrument ${JSON.stringify(instrumentId)}`);
  }
  res.locals.instrumentId = instrumentId;
  return instrumentId;
}

/** The instrument's snapshot as JSON. */
export async function sendInstrument(ctx: ApiContext, res: Response, instrumentId: string): Promise<void> {
  res.json(renderInstrument(ctx, await ctx.instruments.snapshot(instrumentId)));
}

/** The purchase id: from the body or the Idempotency-Key (which must agree), else generated. */
export function purchaseIdFor(req: Request, bodyPurchaseId: string | undefined): string {
  const key = idempotencyKey(req);
  if (key !== undefined && bodyPurchaseId !== undefined && key !== bodyPurchaseId) {
    throw new ProblemError(
      422,
      'idempotency_key_mismatch',
      'purchaseId and the Idempotency-Key header must be equal when both are sent',
      {
        field: 'purchaseId',
      },
    );
  }
  return bodyPurchaseId ?? key ?? newId('pur');
}

export async function purchase(
  ctx: ApiContext,
  instrumentId: string,
  purchaseId: string,
  request: { amount: number; currency: string; description?: string },
) {
  return ctx.instruments.operate(instrumentId, purchaseUpdate, { purchaseId, ...request }, purchaseId);
}

export function instrumentRoutes(ctx: ApiContext): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: '/customers/:customerId/instruments',
      operationId: 'createInstrument',
      summary: 'Create an instrument and get the FPS authorization URL',
      description:
        'Starts the instrument workflow (state awaitingAuthorization) and answers with the signed Co-Branded UI URL to send the buyer to. ' +
        'With an Idempotency-Key, a retried request returns the same instrument (200) instead of creating another.',
      tag: 'instruments',
      security: 'apiKey',
      params: { customerId: s.CustomerId },
      idempotencyKey: true,
      body: { schema: s.CreateInstrumentRequest, required: true },
      responses: {
        201: {
          description: 'Created; send the buyer to authorizationUrl',
          schema: s.CreatedInstrument,
          headers: { Location: 'The instrument' },
        },
        200: { description: 'Replay of an earlier create with the same Idempotency-Key', schema: s.CreatedInstrument },
        ...problems,
        409: 'Instrument id already in use',
      },
      handler: async (req, res) => {
        const customerId = parseWith(s.CustomerId, req.params.customerId, { field: 'customerId' });
        const body = parseWith(s.CreateInstrumentRequest, req.body);
        const created = await createInstrument(ctx, customerId, body, idempotencyKey(req));
        res.locals.instrumentId = created.body.instrumentId;
        res.status(created.status).location(created.body.links.self).json(created.body);
      },
    }),
    route({
      method: 'get',
      path: '/customers/:customerId/instruments',
      operationId: 'listInstruments',
      summary: "List a customer's instruments (Temporal visibility)",
      description:
        'Newest first, at most 100. Visibility is eventually consistent: an instrument created a moment ago may not be listed yet.',
      tag: 'instruments',
      security: 'apiKey',
      params: { customerId: s.CustomerId },
      responses: {
        200: { description: 'The instruments', schema: s.InstrumentList },
        401: problems[401],
        422: 'Invalid customer id',
      },
      handler: async (req, res) => {
        const customerId = parseWith(s.CustomerId, req.params.customerId, { field: 'customerId' });
        const instruments = await ctx.instruments.listForCustomer(customerId);
        res.json({
          customerId,
          instruments: instruments.map((i) => ({ ...i, links: { self: instrumentPath(i.instrumentId) } })),
        });
      },
    }),
    route({
      method: 'get',
      path: '/instruments/:instrumentId',
      operationId: 'getInstrument',
      summary: 'Read an instrument: state, balance or debt, transactions',
      description:
        "The workflow's snapshot query, with amounts as decimal strings and minor units, and a link to the workflow in the Temporal Web UI.",
      tag: 'instruments',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId },
      responses: {
        200: { description: 'The instrument', schema: s.InstrumentSchema },
        401: problems[401],
        404: problems[404],
        504: 'The workflow did not answer in time',
      },
      handler: async (req, res) => {
        await sendInstrument(ctx, res, instrumentIdParam(req, res));
      },
    }),
    route({
      method: 'patch',
      path: '/instruments/:instrumentId',
      operationId: 'updateInstrument',
      summary: 'Change a prepaid instrument’s balance rules (low-balance threshold, auto top-up)',
      description:
        'Runs the setBalanceRules Update and answers the instrument. A field sent replaces its rule, null removes it, a field left out keeps it. ' +
        'Crossings count from the balance as it is: a balance already below a new threshold crosses only after it rises to it and falls again. ' +
        'Setting the same rules again changes nothing, so a retry is safe without an Idempotency-Key.',
      tag: 'instruments',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId },
      body: { schema: s.UpdateInstrumentRequest, required: true },
      responses: {
        200: { description: 'The instrument with its balance rules', schema: s.InstrumentSchema },
        401: problems[401],
        404: problems[404],
        409: 'The instrument is closed (invalid_state or instrument_closed)',
        422: 'Invalid rules (the problem names the field), or not a prepaid instrument',
        504: 'The workflow did not answer in time; retry',
      },
      handler: async (req, res) => {
        const instrumentId = instrumentIdParam(req, res);
        const body = parseWith(s.UpdateInstrumentRequest, req.body);
        const { type, currency } = await ctx.instruments.snapshot(instrumentId);
        const field = body.lowBalanceThreshold !== undefined ? 'lowBalanceThreshold' : 'autoTopUp';
        if (type !== 'prepaid')
          throw new ProblemError(
            422,
            'validation_failed',
            `${field}: balance rules apply to prepaid instruments only`,
            {
              field,
            },
          );
        const change = balanceRulesChange(body, currency);
        const handle = ctx.instruments.handle(instrumentId);
        let snapshot: InstrumentSnapshot;
        try {
          snapshot = await handle.client.connection.withDeadline(Date.now() + ctx.cfg.api.operationTimeoutMs, () =>
            handle.executeUpdate(setBalanceRulesUpdate, { args: [change] }),
          );
        } catch (err) {
          const problem = temporalProblem(err, instrumentId);
          if (problem.status === 404) {
            // An Update to a completed workflow: the instrument is closed, not unknown.
            const { status } = await ctx.instruments.describe(instrumentId);
            if (status !== 'RUNNING')
              throw new ProblemError(409, 'instrument_closed', `instrument ${instrumentId} is closed`);
          }
          throw problem;
        }
        ctx.logger.info({ instrumentId, rules: snapshot.balanceRules }, 'balance rules changed');
        res.json(renderInstrument(ctx, snapshot));
      },
    }),
    route({
      method: 'post',
      path: '/instruments/:instrumentId/purchases',
      operationId: 'createPurchase',
      summary: 'Buy: pay from the prepaid balance, the credit line, or the single-use token',
      description:
        'Runs the purchase Update. The purchase id (body purchaseId, else the Idempotency-Key header; if both are sent they must be equal) is the Update id: ' +
        'sending it again returns the same result and charges once.',
      tag: 'operations',
      security: 'apiKey',
      params: { instrumentId: s.InstrumentId },
      idempotencyKey: true,
      body: { schema: s.PurchaseRequest, required: true },
      responses: {
        201: { description: 'Approved', schema: s.OperationResultSchema },
        202: {
          description: 'Pending at FPS; follow the instrument (Location) for the outcome',
          schema: s.OperationResultSchema,
        },
        ...operationProblems,
      },
      handler: async (req, res) => {
        const instrumentId = instrumentIdParam(req, res);
        const body = parseWith(s.PurchaseRequest, req.body);
        const purchaseId = purchaseIdFor(req, body.purchaseId);
        res.locals.purchaseId = purchaseId;
        const amount = minorUnits(body.amount, body.currency, 'amount');
        const result = await purchase(ctx, instrumentId, purchaseId, {
          amount,
          currency: body.currency,
          description: body.description,
        });
        sendOperationResult(res, instrumentId, result, 201);
      },
    }),
    operationRoute(ctx, {
      path: 'fund',
      operationId: 'fundInstrument',
      summary: 'Add money to a prepaid instrument (FundPrepaid)',
      description: 'Funds the prepaid balance with the funding token from authorization.',
      schema: s.FundRequest,
      bodyRequired: true,
      update: fundUpdate,
      idPrefix: 'fnd',
      approvedStatus: 201,
      toRequest: (_ctx, _id, body, fundingId) => ({
        fundingId,
        amount: minorUnits(body.amount, body.currency, 'amount'),
        currency: body.currency,
      }),
    }),
    operationRoute(ctx, {
      path: 'settle',
      operationId: 'settleDebt',
      summary: 'Settle postpaid debt now (SettleDebt)',
      description: 'Without an amount, the whole outstanding debt.',
      schema: s.SettleRequest,
      bodyRequired: false,
      update: settleUpdate,
      idPrefix: 'stl',
      approvedStatus: 200,
      toRequest: async (c, id, body, settlementId) => ({ settlementId, amount: await checkCurrency(c, id, body) }),
    }),
    operationRoute(ctx, {
      path: 'write-off',
      operationId: 'writeOffDebt',
      summary: 'Write off postpaid debt (WriteOffDebt)',
      description: 'Without an amount, the whole outstanding debt.',
      schema: s.WriteOffRequest,
      bodyRequired: false,
      update: writeOffUpdate,
      idPrefix: 'wof',
      approvedStatus: 200,
      toRequest: async (c, id, body, writeOffId) => ({ writeOffId, amount: await checkCurrency(c, id, body) }),
    }),
    operationRoute(ctx, {
      path: 'refunds',
      operationId: 'refundPurchase',
      summary: 'Refund a purchase, fully or partly (Refund)',
      description: 'Without an amount, everything still refundable.',
      schema: s.RefundRequest,
      bodyRequired: true,
      update: refundUpdate,
      idPrefix: 'rfd',
      approvedStatus: 201,
      toRequest: async (c, id, body, refundId) => ({
        refundId,
        purchaseId: body.purchaseId,
        amount: await checkCurrency(c, id, body),
      }),
    }),
    operationRoute(ctx, {
      path: 'capture',
      operationId: 'captureReservation',
      summary: 'Capture a single-use reservation (Settle)',
      description: 'Without an amount, the whole reserved amount.',
      schema: s.CaptureRequest,
      bodyRequired: false,
      update: captureUpdate,
      idPrefix: 'cap',
      approvedStatus: 200,
      toRequest: async (c, id, body, captureId) => ({ captureId, amount: await checkCurrency(c, id, body) }),
    }),
    operationRoute(ctx, {
      path: 'void',
      operationId: 'voidReservation',
      summary: 'Void a single-use reservation (Cancel)',
      description: 'Cancels the reserved (or pending) transaction.',
      schema: s.VoidRequest,
      bodyRequired: false,
      update: voidUpdate,
      idPrefix: 'void',
      approvedStatus: 200,
      toRequest: (_ctx, _id, _body, voidId) => ({ voidId }),
    }),
    operationRoute(ctx, {
      path: 'close',
      operationId: 'closeInstrument',
      summary: 'Close the instrument',
      description: 'Closes the account (postpaid: after settling what it can); the workflow completes.',
      schema: s.CloseRequest,
      bodyRequired: false,
      update: closeUpdate,
      idPrefix: 'cls',
      approvedStatus: 200,
      toRequest: (_ctx, _id, body) => ({ reason: body.reason }),
    }),
  ];
}
