// The Co-Branded UI: checks the merchant's signed pipeline URL, shows the buyer an Approve/Cancel
// page, creates the tokens (and instrument) on approval, and sends the buyer back to returnURL
// with RSA-SHA1 signed parameters. `X-Sandbox-Decision: approve|abort` skips the page for tests.
import express, { type Request, type Response, type Router } from 'express';
import { signCallbackParams } from '../fps/callback-signature';
import { CBUI_PIPELINES, CBUI_VERSION, type CbuiPipeline } from '../fps/cbui';
import { FpsError } from '../fps/errors';
import { formatIpnAmount, isSupportedCurrency, MoneyError, parseDecimal } from '../fps/money';
import { MAX_CALLER_REFERENCE_LENGTH } from '../fps/requests';
import { toQueryString, verifyCbuiSignature } from '../fps/signature';
import type { Logger } from '../config/logger';
import { html, page, PAGE_CSP, SANDBOX_TITLE, type Html } from './html';
import { newCbuiRequestId } from './ids';
import { fpsErrorMessage, type CbuiAuthorization, type Ledger } from './ledger';
import { parseForm, rawQuery, signingHostCandidates } from './query-api';

export const CBUI_START_PATH = '/cobranded-ui/actions/start';
export const CBUI_DECIDE_PATH = '/cobranded-ui/actions/decide';
/** The header that answers the pipeline without a page: `approve` or `abort`. */
export const DECISION_HEADER = 'x-sandbox-decision';
/**
 * Real FPS's CBUI hosts: URLs signed for them are accepted too, as boto's cbui_url signs for one of
 * them whatever endpoint it is pointed at (the merchant's secret is what proves the request).
 */
const FPS_CBUI_HOSTS = ['authorize.payments-sandbox.amazon.com', 'authorize.payments.amazon.com'];

export interface CbuiDeps {
  ledger: Ledger;
  keys: ReadonlyMap<string, string>;
  privateKeyPem: string;
  certificateUrl: string;
  logger: Logger;
}

type Decision = 'approve' | 'abort';

/** A pipeline request whose signature checked out, parsed as far as it parses. */
interface CbuiStart {
  params: Record<string, string>;
  returnUrl: URL;
  pipeline: string;
  /** Reference parameters present, echoed back on every outcome. */
  references: Record<string, string>;
  /** Set when the parameters are valid; otherwise `problem` says why (status CE). */
  auth?: CbuiAuthorization;
  problem?: string;
}

const REFERENCE_PARAMS: Record<CbuiPipeline, readonly string[]> = {
  SingleUse: ['callerReference'],
  SetupPrepaid: ['callerReferenceSender', 'callerReferenceFunding'],
  SetupPostpaid: ['callerReferenceSender', 'callerReferenceSettlement'],
};

class BadPipelineRequest extends Error {}

export function cbuiRouter(deps: CbuiDeps): Router {
  const router = express.Router();

  router.get(CBUI_START_PATH, (req, res) => {
    let start: CbuiStart;
    try {
      start = checkStart(req, deps.keys);
    } catch (e) {
      if (e instanceof BadPipelineRequest) return errorPage(res, e.message);
      throw e;
    }
    const header = req.get(DECISION_HEADER);
    if (header !== undefined) {
      const decision = header.trim().toLowerCase();
      if (decision !== 'approve' && decision !== 'abort')
        return errorPage(res, `${DECISION_HEADER} must be approve or abort, not ${JSON.stringify(header)}`);
      return redirect(res, decide(start, decision));
    }
    if (start.problem) return redirect(res, decide(start, 'abort'));
    const id = newCbuiRequestId();
    deps.ledger.saveCbuiRequest(id, start.params);
    res
      .set('content-security-policy', PAGE_CSP)
      .type('html')
      .send(page(SANDBOX_TITLE, approvalPage(id, start)));
  });

  router.post(CBUI_DECIDE_PATH, express.urlencoded({ extended: false, limit: '16kb' }), (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const decision = body.decision;
    const params = typeof body.requestId === 'string' ? deps.ledger.cbuiRequest(body.requestId) : undefined;
    if (!params)
      return errorPage(
        res,
        'This payment request is unknown or has expired. Please start again from the merchant’s site.',
      );
    if (decision !== 'approve' && decision !== 'abort') return errorPage(res, 'Choose Approve or Cancel.');
    // The signature was checked when the page was shown; the parameters are re-read from storage.
    redirect(res, decide(parseStart(params), decision));
  });

  /** The buyer's answer -> the signed return URL. */
  function decide(start: CbuiStart, decision: Decision): string {
    let returned: Record<string, string>;
    if (start.problem) {
      returned = { status: 'CE', errorMessage: start.problem, ...start.references };
    } else if (decision === 'abort') {
      returned = { status: 'A', ...start.references };
    } else {
      try {
        returned = { status: 'SC', ...deps.ledger.authorizeCbui(start.auth!), expiry: expiry(start.auth!.expiresAt) };
      } catch (e) {
        if (!(e instanceof FpsError)) throw e;
        returned = { status: 'CE', errorMessage: fpsErrorMessage(e), ...start.references };
      }
    }
    deps.logger.info(
      {
        cbui: start.pipeline,
        decision,
        status: returned.status,
        callerReference: start.references.callerReference ?? start.references.callerReferenceSender,
      },
      'cbui decision',
    );
    return signedReturnUrl(start.returnUrl, returned, deps);
  }

  return router;
}

/** The merchant's return URL plus our parameters, all of them signed (its own query included). */
function signedReturnUrl(returnUrl: URL, returned: Record<string, string>, deps: CbuiDeps): string {
  const urlEndPoint = `${returnUrl.origin}${returnUrl.pathname}`;
  const merchantParams = parseForm(returnUrl.search.slice(1)) ?? {};
  const signed = signCallbackParams(
    { ...merchantParams, ...returned },
    { httpMethod: 'GET', urlEndPoint, privateKeyPem: deps.privateKeyPem, certificateUrl: deps.certificateUrl },
  );
  return `${urlEndPoint}?${toQueryString(signed)}`;
}

function redirect(res: Response, location: string): void {
  res.redirect(302, location);
}

function errorPage(res: Response, message: string): void {
  res
    .status(400)
    .set('content-security-policy', PAGE_CSP)
    .type('html')
    .send(
      page(
        `${SANDBOX_TITLE}: error`,
        html`<h1>We could not process this request</h1>
          <p class="error">${message}</p>`,
      ),
    );
}

/** "MM/YYYY" of the payment method, as FPS put it on the return URL. */
function expiry(expiresAt: number | undefined): string {
  const date =
    expiresAt !== undefined
      ? new Date(expiresAt)
      : new Date(Date.UTC(new Date().getUTCFullYear() + 5, new Date().getUTCMonth(), 1));
  return `${String(date.getUTCMonth() + 1).padStart(2, '0')}/${date.getUTCFullYear()}`;
}

/** Signature and return URL first (an error page, no redirect), then the pipeline (CE redirect). */
function checkStart(req: Request, keys: ReadonlyMap<string, string>): CbuiStart {
  const params = parseForm(rawQuery(req.originalUrl));
  if (!params) throw new BadPipelineRequest('A parameter appears more than once.');
  const callerKey = params.callerKey;
  if (!callerKey) throw new BadPipelineRequest('The request has no callerKey.');
  const secret = keys.get(callerKey);
  if (secret === undefined) throw new BadPipelineRequest(`The caller key ${callerKey} is not registered.`);
  const hosts = [...signingHostCandidates(req.headers.host), ...FPS_CBUI_HOSTS];
  if (!hosts.some((host) => verifyCbuiSignature(params, { host, path: CBUI_START_PATH }, secret))) {
    throw new BadPipelineRequest(
      'The merchant’s signature on this request does not verify (Signature Version 2, lower-case "signature").',
    );
  }
  return parseStart(params);
}

/** Parses a signed pipeline request. Only a missing or unusable returnURL is fatal. */
function parseStart(params: Record<string, string>): CbuiStart {
  let returnUrl: URL;
  try {
    returnUrl = new URL(params.returnURL ?? '');
  } catch {
    throw new BadPipelineRequest('The request has no valid returnURL.');
  }
  if (returnUrl.protocol !== 'http:' && returnUrl.protocol !== 'https:')
    throw new BadPipelineRequest('returnURL must be an http(s) URL.');
  const pipeline = params.pipelineName ?? '';
  const known = (CBUI_PIPELINES as readonly string[]).includes(pipeline) ? (pipeline as CbuiPipeline) : undefined;
  const references: Record<string, string> = {};
  for (const name of known ? REFERENCE_PARAMS[known] : ['callerReference', 'callerReferenceSender']) {
    if (params[name]) references[name] = params[name];
  }
  const start: CbuiStart = { params, returnUrl, pipeline, references };
  try {
    if (!known)
      throw new BadPipelineRequest(
        `pipelineName ${JSON.stringify(pipeline)} is not one of ${CBUI_PIPELINES.join(', ')}`,
      );
    start.auth = authorization(known, params);
  } catch (e) {
    if (!(e instanceof BadPipelineRequest)) throw e;
    start.problem = e.message;
  }
  return start;
}

function authorization(pipeline: CbuiPipeline, params: Record<string, string>): CbuiAuthorization {
  if (params.version !== undefined && params.version !== CBUI_VERSION) {
    throw new BadPipelineRequest(`version ${params.version} is not supported; use ${CBUI_VERSION}`);
  }
  const currency = params.currencyCode ?? 'USD';
  if (!isSupportedCurrency(currency)) throw new BadPipelineRequest(`currencyCode ${currency} is not supported`);
  const reference = (name: string) => {
    const value = params[name];
    if (!value) throw new BadPipelineRequest(`${name} is required for the ${pipeline} pipeline`);
    if (value.length > MAX_CALLER_REFERENCE_LENGTH)
      throw new BadPipelineRequest(`${name} is longer than ${MAX_CALLER_REFERENCE_LENGTH} characters`);
    return value;
  };
  const amount = (name: string) => {
    const value = params[name];
    if (!value) throw new BadPipelineRequest(`${name} is required for the ${pipeline} pipeline`);
    let minor: number;
    try {
      minor = parseDecimal(value, currency);
    } catch (e) {
      if (e instanceof MoneyError) throw new BadPipelineRequest(`${name}: ${e.message}`);
      throw e;
    }
    if (minor <= 0) throw new BadPipelineRequest(`${name} must be greater than zero`);
    return minor;
  };
  const base = { pipeline, callerKey: params.callerKey, currency };
  if (pipeline === 'SingleUse') {
    return {
      ...base,
      callerReference: reference('callerReference'),
      singleUse: { amount: amount('transactionAmount') },
    };
  }
  let expiresAt: number | undefined;
  if (params.validityExpiry !== undefined) {
    if (!/^\d{1,12}$/.test(params.validityExpiry)) throw new BadPipelineRequest('validityExpiry must be epoch seconds');
    expiresAt = Number(params.validityExpiry) * 1000;
    if (expiresAt <= Date.now()) throw new BadPipelineRequest('validityExpiry is in the past');
  }
  const validity = expiresAt !== undefined ? { expiresAt } : {};
  if (pipeline === 'SetupPrepaid') {
    return {
      ...base,
      callerReference: reference('callerReferenceSender'),
      prepaid: { callerReferenceFunding: reference('callerReferenceFunding'), fundingAmount: amount('fundingAmount') },
      ...validity,
    };
  }
  return {
    ...base,
    callerReference: reference('callerReferenceSender'),
    postpaid: {
      callerReferenceSettlement: reference('callerReferenceSettlement'),
      creditLimit: amount('creditLimit'),
      globalAmountLimit: amount('globalAmountLimit'),
    },
    ...validity,
  };
}

function approvalPage(requestId: string, start: CbuiStart): Html {
  const auth = start.auth!;
  const money = (amount: number) => formatIpnAmount({ amount, currency: auth.currency });
  const rows: Array<[string, string]> = [];
  if (auth.singleUse) rows.push(['Amount', money(auth.singleUse.amount)]);
  if (auth.prepaid) rows.push(['Prepaid amount', money(auth.prepaid.fundingAmount)]);
  if (auth.postpaid) {
    rows.push(['Credit limit', money(auth.postpaid.creditLimit)]);
    rows.push(['Total limit', money(auth.postpaid.globalAmountLimit)]);
  }
  const what: Record<CbuiPipeline, string> = {
    SingleUse: 'a one-time payment',
    SetupPrepaid: 'a prepaid balance',
    SetupPostpaid: 'a postpaid credit account',
  };
  return html` <h1>Authorize ${what[auth.pipeline]}</h1>
    <p class="amount">${rows[0][1]}</p>
    <dl>
      <dt>Merchant</dt>
      <dd>${auth.callerKey}</dd>
      <dt>Pipeline</dt>
      <dd id="pipeline">${auth.pipeline}</dd>
      ${rows.map(
        ([label, value]) =>
          html`<dt>${label}</dt>
            <dd>${value}</dd>`,
      )}
      <dt>Reason</dt>
      <dd id="payment-reason">${start.params.paymentReason ?? '—'}</dd>
      <dt>Reference</dt>
      <dd>${auth.callerReference}</dd>
    </dl>
    <form method="post" action="${CBUI_DECIDE_PATH}">
      <input type="hidden" name="requestId" value="${requestId}" />
      <div class="buttons">
        <button id="approve" type="submit" name="decision" value="approve">Approve</button>
        <button id="cancel" type="submit" name="decision" value="abort">Cancel</button>
      </div>
    </form>
    <p><small>This is a sandbox: no real money moves. Approving creates FPS tokens for the merchant.</small></p>`;
}
