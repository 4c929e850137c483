// Admin endpoints: fault injection, IPN controls, and read-only views of the ledger (JSON and one
// HTML page). No authentication: a loopback developer tool, never to be exposed publicly.
import express, { type Response, type Router } from 'express';
import { z } from 'zod';
import { formatDecimal } from '../fps/money';
import { FaultListSchema, type FaultQueue } from './faults';
import { html, page, PAGE_CSP, type Html } from './html';
import type { IpnSender } from './ipn-sender';
import type { CreditRow, Ledger, PrepaidRow, TokenRow, TransactionRow } from './ledger';

export interface AdminDeps {
  ledger: Ledger;
  faults: FaultQueue;
  ipn: IpnSender;
}

/** Money in admin JSON: integer minor units plus the decimal string. */
export const moneyView = (amount: number, currency: string) => ({
  amount,
  currency,
  value: formatDecimal(amount, currency),
});
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function transactionView(tx: TransactionRow) {
  const m = (amount: number) => moneyView(amount, tx.currency);
  return {
    id: tx.id,
    operation: tx.operation,
    action: tx.action,
    callerReference: tx.caller_reference,
    callerKey: tx.caller_key,
    status: tx.status,
    statusCode: tx.status_code,
    statusMessage: tx.status_message,
    amount: m(tx.amount),
    settledAmount: m(tx.settled_amount),
    reservedAmount: m(tx.reserved_amount),
    refundedAmount: m(tx.refunded_amount),
    tokenId: tx.token_id,
    instrumentId: tx.instrument_id,
    instrumentKind: tx.instrument_kind,
    parentId: tx.parent_id,
    pendingOutcome: tx.pending_outcome,
    resolveAt: iso(tx.resolve_at),
    createdAt: iso(tx.created_at),
    updatedAt: iso(tx.updated_at),
  };
}

export function tokenView(t: TokenRow) {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    callerReference: t.caller_reference,
    callerKey: t.caller_key,
    pipeline: t.pipeline,
    amountLimit: t.amount_limit === null ? null : moneyView(t.amount_limit, t.currency),
    instrumentId: t.instrument_id,
    dateInstalled: iso(t.date_installed),
    cancelledAt: iso(t.cancelled_at),
    cancelReason: t.cancel_reason,
  };
}

function prepaidView(p: PrepaidRow, ledger: Ledger) {
  const m = (amount: number) => moneyView(amount, p.currency);
  const pendingOut = ledger.pendingTotal(p.id, 'PAY');
  return {
    id: p.id,
    callerKey: p.caller_key,
    status: p.status,
    balance: m(p.balance),
    availableBalance: m(p.balance - pendingOut),
    pendingOut: m(pendingOut),
    pendingFunding: m(ledger.pendingTotal(p.id, 'FUND_PREPAID')),
    fundedTotal: m(p.funded_total),
    spentTotal: m(p.spent_total),
    fundingLimit: m(p.funding_limit),
    senderTokenId: p.sender_token_id,
    fundingTokenId: p.funding_token_id,
    createdAt: iso(p.created_at),
    expiresAt: iso(p.expires_at),
  };
}

function creditView(c: CreditRow, ledger: Ledger) {
  const m = (amount: number) => moneyView(amount, c.currency);
  return {
    id: c.id,
    callerKey: c.caller_key,
    status: c.status,
    debt: m(c.debt),
    pendingCharges: m(ledger.pendingTotal(c.id, 'PAY')),
    pendingSettlements: m(ledger.pendingTotal(c.id, 'SETTLE_DEBT')),
    creditLimit: m(c.credit_limit),
    globalAmountLimit: m(c.global_amount_limit),
    chargedTotal: m(c.charged_total),
    settledTotal: m(c.settled_total),
    writtenOffTotal: m(c.written_off_total),
    senderTokenId: c.sender_token_id,
    settlementTokenId: c.settlement_token_id,
    createdAt: iso(c.created_at),
    expiresAt: iso(c.expires_at),
  };
}

const IpnPatchSchema = z.strictObject({
  url: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).optional(),
  enabled: z.boolean().optional(),
  duplicate: z.number().int().min(0).max(10).optional(),
  delayMs: z.number().int().min(0).max(600_000).optional(),
});

const limitOf = (value: unknown, fallback = 100) => {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : fallback;
};

function problem(res: Response, status: number, title: string, detail?: string): void {
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', title, status, detail }));
}

export function adminRouter(deps: AdminDeps): Router {
  const { ledger, faults, ipn } = deps;
  const router = express.Router();
  router.use(express.json({ limit: '64kb' }));

  router.get('/admin/faults', (_req, res) => {
    res.json({ faults: faults.list() });
  });
  router.post('/admin/faults', (req, res) => {
    const parsed = FaultListSchema.safeParse(req.body);
    if (!parsed.success) return problem(res, 400, 'invalid fault', z.prettifyError(parsed.error));
    const added = faults.add(parsed.data);
    res.status(201).json({ added, faults: faults.list() });
  });
  router.delete('/admin/faults', (_req, res) => {
    res.json({ removed: faults.clear(), faults: [] });
  });

  router.get('/admin/ipn', (_req, res) => {
    res.json({ ...ipn.settings(), deliveries: ipn.counts() });
  });
  router.post('/admin/ipn', (req, res) => {
    const parsed = IpnPatchSchema.safeParse(req.body ?? {});
    if (!parsed.success) return problem(res, 400, 'invalid IPN settings', z.prettifyError(parsed.error));
    res.json(ipn.configure(parsed.data));
  });
  router.get('/admin/ipn-deliveries', (req, res) => {
    const subject =
      typeof req.query.transactionId === 'string'
        ? req.query.transactionId
        : typeof req.query.tokenId === 'string'
          ? req.query.tokenId
          : undefined;
    res.json({ deliveries: ipn.list(limitOf(req.query.limit), subject).map(deliveryView) });
  });

  router.get('/admin/transactions', (req, res) => {
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    const rows = ledger.listTransactions({
      callerReference: str(req.query.callerReference),
      instrumentId: str(req.query.instrumentId),
      limit: limitOf(req.query.limit),
    });
    res.json({ transactions: rows.map(transactionView) });
  });
  router.get('/admin/transactions/:id', (req, res) => {
    const tx = ledger.transaction(req.params.id);
    if (!tx) return problem(res, 404, 'no such transaction', req.params.id);
    res.json({
      ...transactionView(tx),
      refunds: ledger.childrenOf(tx.id).map(transactionView),
      ipnDeliveries: ipn.list(100, tx.id).map(deliveryView),
    });
  });
  router.get('/admin/prepaid/:id', (req, res) => {
    const p = ledger.prepaid(req.params.id);
    if (!p) return problem(res, 404, 'no such prepaid instrument', req.params.id);
    res.json({
      ...prepaidView(p, ledger),
      transactions: ledger.listTransactions({ instrumentId: p.id, limit: 100 }).map(transactionView),
    });
  });
  router.get('/admin/credit/:id', (req, res) => {
    const c = ledger.credit(req.params.id);
    if (!c) return problem(res, 404, 'no such credit instrument', req.params.id);
    res.json({
      ...creditView(c, ledger),
      transactions: ledger.listTransactions({ instrumentId: c.id, limit: 100 }).map(transactionView),
    });
  });
  router.get('/admin/tokens/:id', (req, res) => {
    const t = ledger.token(req.params.id);
    if (!t) return problem(res, 404, 'no such token', req.params.id);
    res.json(tokenView(t));
  });

  router.get('/admin/summary', (_req, res) => {
    const s = ledger.summary();
    const m = (amount: unknown, currency: unknown) => moneyView(Number(amount ?? 0), String(currency));
    res.json({
      tokens: s.tokens,
      transactions: s.transactions.map((r) => ({
        operation: r.operation,
        status: r.status,
        count: r.n,
        amount: m(r.amount, r.currency),
        settled: m(r.settled, r.currency),
        refunded: m(r.refunded, r.currency),
      })),
      prepaid: s.prepaid.map((r) => ({
        currency: r.currency,
        count: r.n,
        balance: m(r.balance, r.currency),
        funded: m(r.funded, r.currency),
        spent: m(r.spent, r.currency),
      })),
      credit: s.credit.map((r) => ({
        currency: r.currency,
        count: r.n,
        debt: m(r.debt, r.currency),
        charged: m(r.charged, r.currency),
        settled: m(r.settled, r.currency),
        writtenOff: m(r.writtenOff, r.currency),
      })),
      pendingTransactions: s.pendingTransactions,
      ipnDeliveries: ipn.counts(),
      faults: faults.list().length,
    });
  });

  router.get('/admin', (_req, res) => {
    res
      .set('content-security-policy', PAGE_CSP)
      .type('html')
      .send(page('FPS sandbox ledger', ledgerPage(deps), { wide: true }));
  });

  router.use('/admin', (_req, res) => problem(res, 404, 'no such admin endpoint'));
  return router;
}

function deliveryView(d: ReturnType<IpnSender['list']>[number]) {
  return {
    id: d.id,
    notificationType: d.notification_type,
    transactionId: d.transaction_id,
    tokenId: d.token_id,
    transactionStatus: d.transaction_status,
    url: d.url,
    status: d.status,
    attempts: d.attempts,
    nextAttemptAt: d.status === 'pending' ? iso(d.next_attempt_at) : null,
    lastHttpStatus: d.last_http_status,
    lastError: d.last_error,
    createdAt: iso(d.created_at),
    deliveredAt: iso(d.delivered_at),
    params: Object.fromEntries(new URLSearchParams(d.body)),
    attemptLog: d.attemptLog.map((a) => ({
      attempt: a.attempt,
      at: iso(a.at),
      httpStatus: a.http_status,
      error: a.error,
      ms: a.ms,
    })),
  };
}

function ledgerPage({ ledger, ipn, faults }: AdminDeps): Html {
  const money = (amount: number, currency: string) =>
    html`<td class="num">${currency} ${formatDecimal(amount, currency)}</td>`;
  const short = (id: string | null) => (id ? html`<code title="${id}">${id.slice(0, 12)}…</code>` : '');
  const when = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  return html` <h1>FPS sandbox ledger</h1>
    <p>
      Loopback developer tool. JSON: <code>/admin/summary</code>, <code>/admin/transactions</code>,
      <code>/admin/ipn-deliveries</code>. Faults queued: ${faults.list().length}. IPN:
      ${ipn.settings().enabled ? ipn.settings().url || '(no URL)' : 'disabled'}.
    </p>
    <h2>Prepaid instruments</h2>
    <table>
      <tr>
        <th>id</th>
        <th>balance</th>
        <th>funded</th>
        <th>spent</th>
        <th>limit</th>
        <th>created</th>
      </tr>
      ${ledger.listPrepaid(50).map(
        (p) =>
          html`<tr>
            <td>${short(p.id)}</td>
            ${money(p.balance, p.currency)}${money(p.funded_total, p.currency)}${money(p.spent_total, p.currency)}${money(p.funding_limit, p.currency)}
            <td>${when(p.created_at)}</td>
          </tr>`,
      )}
    </table>
    <h2>Credit instruments</h2>
    <table>
      <tr>
        <th>id</th>
        <th>debt</th>
        <th>credit limit</th>
        <th>charged</th>
        <th>settled</th>
        <th>written off</th>
        <th>created</th>
      </tr>
      ${ledger.listCredit(50).map(
        (c) =>
          html`<tr>
            <td>${short(c.id)}</td>
            ${money(c.debt, c.currency)}${money(c.credit_limit, c.currency)}${money(c.charged_total, c.currency)}${money(c.settled_total, c.currency)}${money(c.written_off_total, c.currency)}
            <td>${when(c.created_at)}</td>
          </tr>`,
      )}
    </table>
    <h2>Transactions (latest 100)</h2>
    <table>
      <tr>
        <th>id</th>
        <th>operation</th>
        <th>status</th>
        <th>amount</th>
        <th>refunded</th>
        <th>CallerReference</th>
        <th>instrument</th>
        <th>created</th>
      </tr>
      ${ledger.listTransactions({ limit: 100 }).map(
        (t) =>
          html`<tr>
            <td>${short(t.id)}</td>
            <td>${t.operation}</td>
            <td>${t.status}</td>
            ${money(t.amount, t.currency)}${money(t.refunded_amount, t.currency)}
            <td>${t.caller_reference}</td>
            <td>${short(t.instrument_id)}</td>
            <td>${when(t.created_at)}</td>
          </tr>`,
      )}
    </table>
    <h2>Tokens (latest 50)</h2>
    <table>
      <tr>
        <th>id</th>
        <th>type</th>
        <th>status</th>
        <th>CallerReference</th>
        <th>instrument</th>
        <th>installed</th>
      </tr>
      ${ledger.listTokens(50).map(
        (t) =>
          html`<tr>
            <td>${short(t.id)}</td>
            <td>${t.type}</td>
            <td>${t.status}</td>
            <td>${t.caller_reference}</td>
            <td>${short(t.instrument_id)}</td>
            <td>${when(t.date_installed)}</td>
          </tr>`,
      )}
    </table>
    <h2>IPN deliveries (latest 50)</h2>
    <table>
      <tr>
        <th>#</th>
        <th>type</th>
        <th>transaction / token</th>
        <th>status sent</th>
        <th>delivery</th>
        <th>attempts</th>
        <th>last</th>
        <th>url</th>
      </tr>
      ${ipn.list(50).map(
        (d) =>
          html`<tr>
            <td>${d.id}</td>
            <td>${d.notification_type}</td>
            <td>${short(d.transaction_id ?? d.token_id)}</td>
            <td>${d.transaction_status ?? ''}</td>
            <td>${d.status}</td>
            <td class="num">${d.attempts}</td>
            <td>${d.last_http_status ?? d.last_error ?? ''}</td>
            <td>${d.url}</td>
          </tr>`,
      )}
    </table>`;
}
