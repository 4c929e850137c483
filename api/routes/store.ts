// The demo storefront's own backend (/store/api/...): the page never holds a merchant API key.
// A signed, HttpOnly session cookie names the buyer's customer id; prices come from the catalogue
// here, not from the browser; every instrument route checks the instrument belongs to the buyer.
// Same-origin only: POSTs must be JSON (a cross-site form cannot send that without CORS) and a
// present Origin header must be this site.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { formatDecimal, MAX_MINOR_UNITS, parseDecimal } from '../../fps/money';
import { idempotencyKey, type ApiContext } from '../context';
import { newId } from '../ids';
import { ProblemError } from '../problem';
import { instrumentPath, money, temporalUiUrl } from '../render';
import { route, type RouteSpec } from '../route';
import * as s from '../schemas';
import { minorUnits, parseWith } from '../validate';
import {
  createInstrument,
  instrumentIdParam,
  purchase,
  purchaseIdFor,
  sendInstrument,
  sendOperationResult,
} from './instruments';
import { sendStatement, sendTransactions, statementQuery, transactionsQuery } from './ledger';
import { fulfilmentRoutes, StoreFulfilment } from './store-fulfilment';

const CURRENCY = 'USD';
const COOKIE = 'fps_store_session';
/** The demo's postpaid token may be charged this many times its credit limit over its life (FPS globalAmountLimit). */
const GLOBAL_LIMIT_FACTOR = 10;

/** Prices are the server's; the .13 and .51 cents are the sandbox's magic amounts (Pending then Success, TransactionDenied). */
export const CATALOGUE = [
  { id: 'ebook', name: 'E-book', price: '4.99' },
  { id: 'song', name: 'Song', price: '0.99' },
  { id: 'game-skin', name: 'Game skin', price: '2.49' },
  {
    id: 'pending-demo',
    name: 'Pending demo',
    price: '1.13',
    note: 'FPS answers Pending; an IPN settles it a moment later',
  },
  { id: 'declined-demo', name: 'Declined demo', price: '0.51', note: 'FPS declines it (TransactionDenied)' },
] as const;

const catalogueJson = CATALOGUE.map((item) => ({
  ...item,
  price: money(parseDecimal(item.price, CURRENCY), CURRENCY),
}));

/** The storefront's backend: its routes, and its fulfilment (api/main.ts starts and stops it). */
export function storeBackend(ctx: ApiContext): { routes: RouteSpec[]; fulfilment: StoreFulfilment } {
  const fulfilment = new StoreFulfilment(ctx, CATALOGUE, CURRENCY);
  return { routes: storeRoutes(ctx, fulfilment), fulfilment };
}

function storeRoutes(ctx: ApiContext, fulfilment: StoreFulfilment): RouteSpec[] {
  const secret = ctx.cfg.api.storeSessionSecret || randomBytes(32).toString('hex');
  const sign = (customerId: string) => createHmac('sha256', secret).update(customerId).digest('base64url');
  const secure = ctx.cfg.api.publicUrl.startsWith('https:');

  function sessionCustomer(req: Request): string | undefined {
    const cookie = parseCookies(req.headers.cookie)[COOKIE];
    const dot = cookie?.lastIndexOf('.') ?? -1;
    if (!cookie || dot <= 0) return undefined;
    const customerId = cookie.slice(0, dot);
    const given = Buffer.from(cookie.slice(dot + 1));
    const expected = Buffer.from(sign(customerId));
    return given.length === expected.length && timingSafeEqual(given, expected) ? customerId : undefined;
  }

  function requireSession(req: Request, res: Response): string {
    const customerId = sessionCustomer(req);
    if (!customerId) throw new ProblemError(401, 'session_required', 'open the storefront first: it starts a session');
    res.locals.customerId = customerId;
    return customerId;
  }

  // Ownership never changes, so a verified instrument id is remembered (bounded).
  const owners = new Map<string, string>();
  async function requireOwnInstrument(
    req: Request,
    res: Response,
  ): Promise<{ customerId: string; instrumentId: string }> {
    const customerId = requireSession(req, res);
    const instrumentId = instrumentIdParam(req, res);
    let owner = owners.get(instrumentId);
    if (owner === undefined) {
      owner = (await ctx.instruments.describe(instrumentId)).customerId;
      if (owner !== undefined) {
        if (owners.size >= 10_000) owners.delete(owners.keys().next().value!);
        owners.set(instrumentId, owner);
      }
    }
    if (owner !== customerId)
      throw new ProblemError(404, 'instrument_not_found', `no instrument ${instrumentId} in this session`);
    return { customerId, instrumentId };
  }

  const sameOrigin: RequestHandler = (req, _res, next) => {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `${req.protocol}://${req.headers.host}`) {
      throw new ProblemError(403, 'cross_origin_request', 'storefront calls must come from the storefront page');
    }
    next();
  };

  const session = { 401: 'No storefront session (open the page first)' };

  return [
    ...fulfilmentRoutes(fulfilment, requireSession),
    route({
      method: 'get',
      path: '/store/api/session',
      operationId: 'storeSession',
      summary: 'Storefront: start or resume the buyer session; catalogue and instruments',
      description: 'Sets an HttpOnly session cookie naming a fresh demo customer id when there is none.',
      tag: 'storefront',
      security: 'none',
      responses: { 200: { description: 'The session', schema: s.StoreSession } },
      handler: async (req, res) => {
        let customerId = sessionCustomer(req);
        if (!customerId) {
          customerId = newId('cus');
          res.cookie(COOKIE, `${customerId}.${sign(customerId)}`, {
            httpOnly: true,
            sameSite: 'lax',
            secure,
            path: '/',
            maxAge: 30 * 24 * 3600 * 1000,
          });
        }
        res.locals.customerId = customerId;
        const instruments = await ctx.instruments.listForCustomer(customerId, 20);
        res.json({
          customerId,
          catalogue: catalogueJson,
          instruments: instruments.map((i) => ({
            ...i,
            links: { self: `/store/api${instrumentPath(i.instrumentId)}` },
          })),
          temporalUiUrl: temporalUiUrl(ctx.cfg),
        });
      },
    }),
    route({
      method: 'post',
      path: '/store/api/instruments',
      operationId: 'storeCreateInstrument',
      summary: 'Storefront: create a prepaid or postpaid instrument for the session’s buyer',
      description:
        'USD; a postpaid globalAmountLimit of ten times the credit limit. Answers the CBUI URL to send the browser to.',
      tag: 'storefront',
      security: 'storeSession',
      before: [sameOrigin],
      idempotencyKey: true,
      body: { schema: s.StoreCreateInstrumentRequest, required: true },
      responses: {
        201: { description: 'Created', schema: s.CreatedInstrument },
        ...session,
        403: 'Cross-origin request',
        422: 'Invalid amount',
      },
      handler: async (req, res) => {
        const customerId = requireSession(req, res);
        const body = parseWith(s.StoreCreateInstrumentRequest, req.body);
        const description = 'Demo storefront';
        const request: s.CreateInstrumentRequest =
          body.type === 'prepaid'
            ? { type: 'prepaid', fundingAmount: body.fundingAmount, currency: CURRENCY, returnTo: '/', description }
            : {
                type: 'postpaid',
                creditLimit: body.creditLimit,
                globalAmountLimit: formatDecimal(
                  Math.min(
                    minorUnits(body.creditLimit, CURRENCY, 'creditLimit') * GLOBAL_LIMIT_FACTOR,
                    MAX_MINOR_UNITS,
                  ),
                  CURRENCY,
                ),
                currency: CURRENCY,
                returnTo: '/',
                description,
              };
        // The key derives the instrument id (per customer), so a retried click answers the same one.
        const created = await createInstrument(ctx, customerId, request, idempotencyKey(req));
        res.locals.instrumentId = created.body.instrumentId;
        res.status(created.status).json(created.body);
      },
    }),
    route({
      method: 'get',
      path: '/store/api/instruments/:instrumentId',
      operationId: 'storeGetInstrument',
      summary: 'Storefront: the buyer’s instrument (state, balance or debt, transactions)',
      tag: 'storefront',
      security: 'storeSession',
      params: { instrumentId: s.InstrumentId },
      responses: {
        200: { description: 'The instrument', schema: s.InstrumentSchema },
        ...session,
        404: 'Not the buyer’s instrument',
      },
      handler: async (req, res) => {
        const { instrumentId } = await requireOwnInstrument(req, res);
        await sendInstrument(ctx, res, instrumentId);
      },
    }),
    route({
      method: 'get',
      path: '/store/api/instruments/:instrumentId/transactions',
      operationId: 'storeTransactions',
      summary: 'Storefront: the buyer’s recorded operations, newest first, in pages',
      description: 'The record’s transactions of the buyer’s instrument (limit at most 50); nextCursor pages on.',
      tag: 'storefront',
      security: 'storeSession',
      params: { instrumentId: s.InstrumentId },
      query: transactionsQuery,
      responses: {
        200: { description: 'A page', schema: s.TransactionPage },
        400: 'A query parameter is invalid (invalid_parameter)',
        ...session,
        404: 'Not the buyer’s instrument',
        503: 'No record configured (ledger_unavailable)',
      },
      handler: async (req, res) => {
        const { instrumentId } = await requireOwnInstrument(req, res);
        await sendTransactions(ctx, req, res, instrumentId, 50);
      },
    }),
    route({
      method: 'get',
      path: '/store/api/instruments/:instrumentId/statement',
      operationId: 'storeStatement',
      summary: 'Storefront: the buyer’s statement, as JSON or a CSV download (format=csv)',
      tag: 'storefront',
      security: 'storeSession',
      params: { instrumentId: s.InstrumentId },
      query: statementQuery,
      responses: {
        200: {
          description: 'The statement',
          schema: s.StatementSchema,
          alternatives: [{ contentType: 'text/csv', schema: s.StatementCsv }],
        },
        400: 'A query parameter is invalid (invalid_parameter)',
        ...session,
        404: 'Not the buyer’s instrument',
        503: 'No record configured (ledger_unavailable)',
      },
      handler: async (req, res) => {
        const { instrumentId } = await requireOwnInstrument(req, res);
        await sendStatement(ctx, req, res, instrumentId);
      },
    }),
    route({
      method: 'post',
      path: '/store/api/instruments/:instrumentId/purchases',
      operationId: 'storePurchase',
      summary: 'Storefront: buy a catalogue item with the buyer’s instrument',
      description:
        'The price comes from the server-side catalogue. Send an Idempotency-Key per click so a retried click buys once.',
      tag: 'storefront',
      security: 'storeSession',
      before: [sameOrigin],
      params: { instrumentId: s.InstrumentId },
      idempotencyKey: true,
      body: { schema: s.StorePurchaseRequest, required: true },
      responses: {
        201: { description: 'Approved', schema: s.OperationResultSchema },
        202: { description: 'Pending', schema: s.OperationResultSchema },
        402: 'Declined',
        ...session,
        403: 'Cross-origin request',
        404: 'Not the buyer’s instrument',
        409: 'Instrument not active',
        422: 'Unknown item, or over the balance / credit limit',
      },
      handler: async (req, res) => {
        const { instrumentId } = await requireOwnInstrument(req, res);
        const body = parseWith(s.StorePurchaseRequest, req.body);
        const item = CATALOGUE.find((i) => i.id === body.itemId);
        if (!item)
          throw new ProblemError(422, 'validation_failed', `no catalogue item ${JSON.stringify(body.itemId)}`, {
            field: 'itemId',
          });
        const purchaseId = purchaseIdFor(req, undefined);
        res.locals.purchaseId = purchaseId;
        const result = await purchase(ctx, instrumentId, purchaseId, {
          amount: parseDecimal(item.price, CURRENCY),
          currency: CURRENCY,
          description: item.name,
        });
        sendOperationResult(res, instrumentId, result, 201);
      },
    }),
  ];
}

function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) {
      try {
        cookies[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        // A malformed cookie is simply absent.
      }
    }
  }
  return cookies;
}
