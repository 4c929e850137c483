// The FPS Query API at "/": GET query strings and POST forms, Signature V2 checked against the
// request's own Host header, then one FPS action against the ledger, answered in FPS XML.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Request, RequestHandler, Response } from 'express';
import { FPS_API_VERSIONS, isFpsAction, type FpsAction, type FpsRequest, type FpsResult } from '../fps/actions';
import { verifyCallbackSignature } from '../fps/callback-signature';
import { FpsError, httpStatusFor } from '../fps/errors';
import { decodeRequest } from '../fps/requests';
import { signingHost, stringToSign, verifyQuerySignature } from '../fps/signature';
import { buildErrorXml, buildResponseXml } from '../fps/xml';
import type { Logger } from '../config/logger';
import type { Fault, FaultQueue } from './faults';
import type { FpsRequestObservation } from './metrics';
import { fpsError, fpsErrorMessage, type Ledger, type Outcome } from './ledger';

/** FPS refused requests whose Timestamp was further than this from its clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export interface QueryApiDeps {
  ledger: Ledger;
  /** access key id -> secret */
  keys: ReadonlyMap<string, string>;
  faults: FaultQueue;
  certificatePem: string;
  /** Called after an action that may have changed state (wakes the IPN sender and the pending resolver). */
  afterChange: () => void;
  logger: Logger;
  /** Told about each answered (or dropped) request: the sandbox's metrics. */
  onRequest?: (observation: FpsRequestObservation) => void;
}

type Handler<A extends FpsAction> = (callerKey: string, request: FpsRequest<A>) => Outcome<FpsResult<A>> | FpsResult<A>;
type Handlers = { [A in FpsAction]: Handler<A> };

const READ_ONLY: ReadonlySet<FpsAction> = new Set([
  'GetPrepaidBalance',
  'GetDebtBalance',
  'GetOutstandingDebtBalance',
  'GetTransactionStatus',
  'GetTokenByCaller',
  'VerifySignature',
]);

function handlers(deps: QueryApiDeps): Handlers {
  const { ledger } = deps;
  return {
    Pay: (caller, r) => ledger.pay(caller, 'Pay', r),
    Reserve: (caller, r) => ledger.pay(caller, 'Reserve', r),
    Settle: (caller, r) => ledger.settle(caller, r),
    Refund: (caller, r) => ledger.refund(caller, r),
    Cancel: (caller, r) => ledger.cancel(caller, r),
    FundPrepaid: (caller, r) => ledger.fundPrepaid(caller, r),
    GetPrepaidBalance: (caller, r) => ledger.prepaidBalance(caller, r.prepaidInstrumentId),
    SettleDebt: (caller, r) => ledger.settleDebt(caller, r),
    WriteOffDebt: (caller, r) => ledger.writeOffDebt(caller, r),
    GetDebtBalance: (caller, r) => ledger.debtBalance(caller, r.creditInstrumentId),
    GetOutstandingDebtBalance: (caller) => ledger.outstandingDebt(caller),
    GetTransactionStatus: (caller, r) => ledger.transactionStatus(caller, r.transactionId),
    GetTokenByCaller: (caller, r) => ledger.tokenByCaller(caller, r),
    CancelToken: (caller, r) => ledger.cancelToken(caller, r),
    VerifySignature: (_caller, r) => ({
      verificationStatus: verifySandboxSignature(r.urlEndPoint, r.httpParameters, deps.certificatePem)
        ? 'Success'
        : 'Failure',
    }),
  };
}

/**
 * VerifySignature: did this sandbox sign these return-URL (GET) or IPN (POST) parameters for
 * this endpoint? FPS's action names no HTTP method, so either is accepted.
 */
export function verifySandboxSignature(urlEndPoint: string, httpParameters: string, certificatePem: string): boolean {
  const params = parseForm(httpParameters);
  if (!params) return false;
  return ['GET', 'POST'].some((httpMethod) =>
    verifyCallbackSignature(params, { httpMethod, urlEndPoint, certificatePem }),
  );
}

/** Form/query text -> parameters; undefined when a name repeats (ambiguous, never signed that way). */
export function parseForm(text: string): Record<string, string> | undefined {
  const params: Record<string, string> = Object.create(null);
  for (const [name, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(params, name)) return undefined;
    params[name] = value;
  }
  return params;
}

/** The raw query string of a request URL (without '?'). */
export const rawQuery = (url: string) => {
  const at = url.indexOf('?');
  return at < 0 ? '' : url.slice(at + 1);
};

/**
 * host[:port] candidates for the string to sign: the Host header as received, and without a
 * default port (some clients send "host:443" but sign "host").
 */
export function signingHostCandidates(hostHeader: string | undefined): string[] {
  if (!hostHeader) return [];
  const host = hostHeader.toLowerCase();
  return [...new Set([host, signingHost(host, 'http:'), signingHost(host, 'https:')])];
}

export function queryApi(deps: QueryApiDeps): RequestHandler {
  const table = handlers(deps);
  const run = <A extends FpsAction>(action: A, caller: string, request: FpsRequest<A>) =>
    (table[action] as Handler<A>)(caller, request);

  return async (req: Request, res: Response) => {
    const started = performance.now();
    const requestId = randomUUID();
    const log: Record<string, unknown> = { requestId, method: req.method };
    res.locals.logged = true;
    const finish = (status: number | 'dropped', extra: Record<string, unknown> = {}) => {
      Object.assign(log, extra, { status, ms: Math.round((performance.now() - started) * 10) / 10 });
      deps.logger.info(log, 'fps request');
      deps.onRequest?.({
        action: typeof log.action === 'string' && isFpsAction(log.action) ? log.action : '(invalid)',
        status,
        errorCode: typeof log.errorCode === 'string' ? log.errorCode : undefined,
        transactionStatus: typeof log.transactionStatus === 'string' ? log.transactionStatus : undefined,
        ms: performance.now() - started,
      });
    };
    const sendError = (e: FpsError) => {
      res
        .status(e.httpStatus ?? httpStatusFor(e.code))
        .type('text/xml; charset=utf-8')
        .send(buildErrorXml(e.code, fpsErrorMessage(e), requestId));
      finish(res.statusCode, { errorCode: e.code });
    };

    let action: FpsAction | undefined;
    let fault: Fault | undefined;
    try {
      const params = parseForm(
        req.method === 'GET' ? rawQuery(req.originalUrl) : typeof req.body === 'string' ? req.body : '',
      );
      if (!params) throw fpsError('InvalidParams', 'a parameter appears more than once');
      Object.assign(log, { action: params.Action, callerReference: params.CallerReference });
      const caller = authenticate(req, params, deps.keys);
      const version = params.Version;
      if (!version) throw fpsError('InvalidParams', 'Version is required');
      if (!(FPS_API_VERSIONS as readonly string[]).includes(version)) {
        throw fpsError(
          'InvalidParams',
          `Version ${version} is not supported; use one of ${FPS_API_VERSIONS.join(', ')}`,
        );
      }
      if (!isFpsAction(params.Action))
        throw fpsError(
          'InvalidAction',
          `${params.Action ? `Action ${params.Action}` : 'an empty Action'} is not an FPS action`,
        );
      action = params.Action;

      fault = deps.faults.take(action);
      if (fault) log.fault = fault.kind;
      if (fault?.kind === 'error') {
        throw fpsError(fault.code, fault.message ?? `injected ${fault.code} (sandbox fault)`);
      }
      if (fault?.kind === 'delay') await sleep(fault.ms);

      const request = decodeRequest(action, params);
      const outcome = run(action, caller, request);
      if (!READ_ONLY.has(action)) deps.afterChange();
      const replayed = isOutcome(outcome) ? outcome.replayed : undefined;
      const result = isOutcome(outcome) ? outcome.result : outcome;
      const transactionId =
        (result as { transactionId?: string }).transactionId ??
        (request as { transactionId?: string; reserveTransactionId?: string }).transactionId ??
        (request as { reserveTransactionId?: string }).reserveTransactionId;
      Object.assign(log, {
        transactionId,
        transactionStatus: (result as { transactionStatus?: string }).transactionStatus,
        replayed,
      });
      if (fault?.kind === 'drop') {
        // The work is done and committed; the caller never hears about it.
        req.socket.destroy();
        finish('dropped');
        return;
      }
      res.type('text/xml; charset=utf-8').send(buildResponseXml(action, result as never, requestId, version));
      finish(res.statusCode);
    } catch (e) {
      if (fault?.kind === 'drop') {
        // Refused or not, the caller never hears about it.
        req.socket.destroy();
        finish('dropped', { errorCode: e instanceof FpsError ? e.code : 'InternalError' });
        return;
      }
      if (e instanceof FpsError) return sendError(e);
      deps.logger.error({ err: e, requestId, action }, 'fps request failed unexpectedly');
      sendError(fpsError('InternalError', 'the sandbox failed to process the request'));
    }
  };
}

const isOutcome = (value: unknown): value is Outcome<unknown> =>
  typeof value === 'object' && value !== null && 'replayed' in value && 'result' in value;

/** The caller's access key id, once its signature and time window check out. */
function authenticate(req: Request, params: Record<string, string>, keys: ReadonlyMap<string, string>): string {
  const keyId = params.AWSAccessKeyId;
  if (!keyId) throw fpsError('AuthFailure', 'AWSAccessKeyId is required');
  const secret = keys.get(keyId);
  if (secret === undefined)
    throw fpsError('InvalidClientTokenId', `the AWS access key id ${keyId} does not exist in our records`);
  const method = req.method === 'POST' ? 'POST' : 'GET';
  const hosts = signingHostCandidates(req.headers.host);
  if (!hosts.some((host) => verifyQuerySignature(params, { method, host, path: req.path }, secret))) {
    const expected = stringToSign(method, hosts[0] ?? '', req.path, params, ['Signature']);
    throw fpsError(
      'SignatureDoesNotMatch',
      `the request signature we calculated does not match the signature you provided (SignatureVersion 2, HmacSHA256 or HmacSHA1). String to sign: ${JSON.stringify(expected)}`,
    );
  }
  const now = Date.now();
  if (params.Timestamp) {
    const at = Date.parse(params.Timestamp);
    if (Number.isNaN(at)) throw fpsError('InvalidParams', `Timestamp ${params.Timestamp} is not an ISO 8601 time`);
    if (Math.abs(now - at) > MAX_CLOCK_SKEW_MS) {
      throw fpsError(
        'RequestExpired',
        `Timestamp ${params.Timestamp} is more than 15 minutes from the server time ${new Date(now).toISOString()}`,
      );
    }
  } else if (params.Expires) {
    const at = Date.parse(params.Expires);
    if (Number.isNaN(at)) throw fpsError('InvalidParams', `Expires ${params.Expires} is not an ISO 8601 time`);
    if (now > at) throw fpsError('RequestExpired', `the request expired at ${params.Expires}`);
  } else {
    throw fpsError('InvalidParams', 'Timestamp or Expires is required');
  }
  return keyId;
}
