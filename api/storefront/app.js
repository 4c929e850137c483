// The demo storefront: set up a prepaid or postpaid instrument through the FPS Co-Branded UI,
// then buy catalogue items with it. Talks only to its own backend (/store/api), never with an API key.
// "Your library" is pushed by the backend over server-sent events when its webhook hears
// purchase.approved; a pending purchase's outcome arrives the same way (no polling for it).
'use strict';

const $ = (selector) => document.querySelector(selector);
const STEADY_STATES = ['active', 'depleted', 'delinquent', 'closed'];
/** Only while an instrument is being set up (authorization, first funding); purchases are pushed. */
const POLL_MS = 1000;
/** After a push, the workflow may apply the IPN a moment after the record did: a few bounded re-reads. */
const FOLLOW_UP_MS = 300;
const FOLLOW_UP_TRIES = 10;

let session;
let instrumentId;
let pollTimer;
let lastInstrument;
let instrumentReads = 0;
/** The statement view's pages: cursors of the pages before the one shown (undefined: the newest). */
const STATEMENT_PAGE_SIZE = 5;
let statementCursors = [];
let statementNext = null;

/** A problem+json error from the store backend. */
class StoreError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
  }
}

async function store(path, { method = 'GET', body, idempotencyKey } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  const response = await fetch(`/store/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw new StoreError(payload, response.status);
  return { status: response.status, body: payload };
}

/** Works outside secure contexts too (crypto.randomUUID does not). */
function newKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Adds transaction amounts in minor units (never floats), as a money object. */
function sumOf(transactions, currency) {
  const minor = transactions.reduce((total, t) => total + t.amount.minorUnits, 0);
  return { currency, minorUnits: minor, amount: `${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, '0')}` };
}

const formatMoney = (money) =>
  money ? (money.currency === 'USD' ? `$${money.amount}` : `${money.amount} ${money.currency}`) : '–';

function say(text, tone = '') {
  const message = $('#message');
  message.textContent = text;
  message.className = `message ${tone}`;
  message.hidden = !text;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

// ---- setup -------------------------------------------------------------------------------------

function selectedType() {
  return document.querySelector('input[name="type"]:checked').value;
}

function onTypeChange() {
  const prepaid = selectedType() === 'prepaid';
  $('#amount-label').textContent = prepaid ? 'Funding amount (USD)' : 'Credit limit (USD)';
  $('#amount').value = prepaid ? '20.00' : '50.00';
}

async function authorize(event) {
  event.preventDefault();
  const button = $('#authorize');
  button.disabled = true;
  const type = selectedType();
  const amount = $('#amount').value.trim();
  try {
    const body = type === 'prepaid' ? { type, fundingAmount: amount } : { type, creditLimit: amount };
    const { body: created } = await store('/instruments', { method: 'POST', body, idempotencyKey: newKey('setup') });
    localStorage.setItem('instrument', created.instrumentId);
    say('Taking you to Amazon Payments…');
    window.location.assign(created.authorizationUrl);
  } catch (error) {
    say(`Could not start authorization: ${error.message}`, 'bad');
    button.disabled = false;
  }
}

// ---- instrument --------------------------------------------------------------------------------

function renderInstrument(instrument) {
  show('#setup', false);
  show('#instrument', true);
  show('#shop', true);
  show('#history', true);
  show('#statement', true);
  $('#statement-csv').href =
    `/store/api/instruments/${encodeURIComponent(instrument.instrumentId)}/statement?format=csv`;
  $('#instrument-type').textContent = instrument.type;
  $('#instrument-id').textContent = instrument.instrumentId;
  const state = $('#state');
  state.textContent = instrument.state + (instrument.pending.length ? ` · ${instrument.pending.length} pending` : '');
  state.className = `badge ${instrument.state === 'active' ? 'active' : instrument.state === 'closed' ? 'closed' : 'waiting'}`;
  state.dataset.state = instrument.state;

  if (instrument.type === 'postpaid') {
    $('#primary-label').textContent = 'Debt';
    $('#primary-figure').textContent = formatMoney(instrument.debt);
    $('#secondary-label').textContent = 'Credit limit';
    $('#secondary-figure').textContent = formatMoney(instrument.creditLimit);
  } else {
    $('#primary-label').textContent = 'Balance';
    $('#primary-figure').textContent = formatMoney(instrument.balance);
    $('#secondary-label').textContent = 'Pending';
    $('#secondary-figure').textContent = formatMoney(sumOf(instrument.pending, instrument.currency));
  }
  $('#purchase-count').textContent = String(instrument.purchasesApproved);
  $('#temporal-link').href = instrument.temporalUiUrl;

  for (const button of document.querySelectorAll('#catalogue button')) button.disabled = instrument.state !== 'active';

  const rows = [
    ...instrument.pending,
    ...instrument.transactions.filter((t) => !instrument.pending.some((p) => p.id === t.id)),
  ]
    .sort((a, b) => b.at.localeCompare(a.at))
    .map((t) => {
      const row = document.createElement('tr');
      const cells = [
        t.operation,
        t.id,
        formatMoney(t.amount),
        t.status + (t.reason ? ` (${t.reason.code})` : ''),
        t.transactionId || '',
      ];
      cells.forEach((text, i) => {
        const cell = document.createElement('td');
        if (i === 1 || i === 4) {
          const code = document.createElement('code');
          code.textContent = text;
          cell.append(code);
        } else {
          cell.textContent = text;
        }
        if (i === 2) cell.className = 'num';
        if (i === 3) cell.className = `status-${t.status}`;
        row.append(cell);
      });
      return row;
    });
  $('#transactions').replaceChildren(...rows);
}

async function loadInstrument() {
  clearTimeout(pollTimer);
  const read = ++instrumentReads;
  try {
    const { body: instrument } = await store(`/instruments/${encodeURIComponent(instrumentId)}`);
    // An older read answering after a newer one would show a stale instrument.
    if (read !== instrumentReads) return;
    renderInstrument(instrument);
    lastInstrument = instrument;
    if (!STEADY_STATES.includes(instrument.state)) pollTimer = setTimeout(loadInstrument, POLL_MS);
    // Settled: the newest page of the statement shows what just happened (an older page stays put).
    else if (statementCursors.length === 0) await loadStatement();
  } catch (error) {
    if (error.status === 404) {
      localStorage.removeItem('instrument');
      instrumentId = undefined;
      showSetup();
      return;
    }
    say(`Could not load the instrument: ${error.message}`, 'bad');
    pollTimer = setTimeout(loadInstrument, POLL_MS * 3);
  }
}

function showSetup() {
  clearTimeout(pollTimer);
  show('#setup', true);
  show('#instrument', false);
  show('#shop', false);
  show('#history', false);
  show('#statement', false);
  statementCursors = [];
  $('#authorize').disabled = false;
}

// ---- statement ---------------------------------------------------------------------------------

/** Shows the page after `cursor` (the newest without one); the record pages by cursor, newest first. */
async function loadStatement(cursor = statementCursors.at(-1)) {
  if (!instrumentId) return;
  const query = new URLSearchParams({ limit: String(STATEMENT_PAGE_SIZE) });
  if (cursor) query.set('cursor', cursor);
  let page;
  try {
    ({ body: page } = await store(`/instruments/${encodeURIComponent(instrumentId)}/transactions?${query}`));
  } catch (error) {
    // 503: this shop runs without a record; the recent transactions above still show.
    show('#statement', false);
    if (error.status !== 503) say(`Could not load the statement: ${error.message}`, 'bad');
    return;
  }
  statementNext = page.nextCursor;
  const rows = page.data.map((t) => {
    const row = document.createElement('tr');
    row.dataset.id = t.id;
    const cells = [
      new Date(t.createdAt).toLocaleString(),
      t.operation,
      t.description || t.id,
      formatMoney(t.amount),
      t.status + (t.declineCode ? ` (${t.declineCode})` : ''),
    ];
    cells.forEach((text, i) => {
      const cell = document.createElement('td');
      cell.textContent = text;
      if (i === 3) cell.className = 'num';
      if (i === 4) cell.className = `status-${t.status}`;
      row.append(cell);
    });
    return row;
  });
  $('#statement-lines').replaceChildren(...rows);
  $('#statement-page').textContent = `Page ${statementCursors.length + 1}`;
  $('#statement-newer').disabled = statementCursors.length === 0;
  $('#statement-older').disabled = !statementNext;
}

function olderStatementPage() {
  if (!statementNext) return;
  statementCursors.push(statementNext);
  void loadStatement();
}

function newerStatementPage() {
  statementCursors.pop();
  void loadStatement();
}

// ---- library (server-sent events) --------------------------------------------------------------

const libraryItems = new Map();

function renderLibrary() {
  const items = [...libraryItems.values()].sort((a, b) => b.unlockedAt.localeCompare(a.unlockedAt));
  const rows = items.map((item) => {
    const li = document.createElement('li');
    li.dataset.purchase = item.purchaseId;
    li.dataset.item = item.itemId;
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: item.name });
    const when = Object.assign(document.createElement('span'), {
      className: 'when',
      textContent: `unlocked ${new Date(item.unlockedAt).toLocaleString()}`,
    });
    const link = Object.assign(document.createElement('a'), {
      className: 'button-link',
      href: item.download,
      textContent: 'Download',
    });
    link.setAttribute('download', '');
    li.append(name, when, link);
    return li;
  });
  $('#library-items').replaceChildren(...rows);
  show('#library-empty', rows.length === 0);
}

/** Re-reads the instrument after a push until the workflow has applied that purchase (bounded). */
async function followUp(purchaseId, tries = FOLLOW_UP_TRIES) {
  if (!instrumentId) return;
  await loadInstrument();
  if (tries > 1 && lastInstrument?.pending.some((p) => p.id === purchaseId))
    setTimeout(() => void followUp(purchaseId, tries - 1), FOLLOW_UP_MS);
}

function connectLibrary() {
  show('#library', true);
  // EventSource reconnects by itself (after the server's `retry`) if the stream drops.
  const events = new EventSource('/store/api/library/events');
  const live = $('#library-live');
  events.addEventListener('open', () => {
    live.textContent = 'live';
    live.className = 'badge active';
  });
  events.addEventListener('error', () => {
    live.textContent = 'reconnecting';
    live.className = 'badge waiting';
  });
  events.addEventListener('library', (message) => {
    libraryItems.clear();
    for (const item of JSON.parse(message.data).items) libraryItems.set(item.purchaseId, item);
    renderLibrary();
  });
  events.addEventListener('unlocked', (message) => {
    const item = JSON.parse(message.data);
    const wasPending = lastInstrument?.pending.some((p) => p.id === item.purchaseId);
    libraryItems.set(item.purchaseId, item);
    renderLibrary();
    if (wasPending) say(`${item.name}: payment confirmed. It is in your library.`, 'ok');
    if (item.instrumentId === instrumentId) void followUp(item.purchaseId);
  });
  events.addEventListener('declined', (message) => {
    const { purchaseId, name } = JSON.parse(message.data);
    // Declines answered at once were already said by buy(); this is for pending ones.
    if (!lastInstrument?.pending.some((p) => p.id === purchaseId)) return;
    say(`${name}: payment declined after all.`, 'bad');
    void followUp(purchaseId);
  });
}

// ---- shop --------------------------------------------------------------------------------------

function renderCatalogue(items) {
  const list = items.map((item) => {
    const li = document.createElement('li');
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: item.name });
    const price = Object.assign(document.createElement('span'), {
      className: 'price',
      textContent: formatMoney(item.price),
    });
    const note = Object.assign(document.createElement('span'), { className: 'note', textContent: item.note || '' });
    const button = Object.assign(document.createElement('button'), {
      type: 'button',
      textContent: 'Buy',
      disabled: true,
    });
    button.dataset.item = item.id;
    button.addEventListener('click', () => buy(item, button));
    li.append(name, price, note, button);
    return li;
  });
  $('#catalogue').replaceChildren(...list);
}

async function buy(item, button) {
  button.disabled = true;
  try {
    const { status, body } = await store(`/instruments/${encodeURIComponent(instrumentId)}/purchases`, {
      method: 'POST',
      body: { itemId: item.id },
      idempotencyKey: newKey('buy'),
    });
    if (status === 202)
      say(`${item.name}: payment pending at Amazon Payments (${body.transactionId}). It settles in a moment.`, 'warn');
    else say(`Bought ${item.name} for ${formatMoney(body.amount)} (transaction ${body.transactionId}).`, 'ok');
  } catch (error) {
    if (error.status === 402)
      say(`${item.name}: payment declined (${error.problem.declineCode || 'declined'}).`, 'bad');
    else say(`${item.name}: ${error.message}`, 'bad');
  }
  await loadInstrument();
}

// ---- start -------------------------------------------------------------------------------------

async function start() {
  document.querySelectorAll('input[name="type"]').forEach((radio) => radio.addEventListener('change', onTypeChange));
  $('#setup-form').addEventListener('submit', authorize);
  $('#statement-older').addEventListener('click', olderStatementPage);
  $('#statement-newer').addEventListener('click', newerStatementPage);
  $('#new-instrument').addEventListener('click', () => {
    localStorage.removeItem('instrument');
    instrumentId = undefined;
    say('');
    showSetup();
  });

  const params = new URLSearchParams(window.location.search);
  const returned = params.get('instrument');
  const authorization = params.get('authorization');
  if (returned) {
    localStorage.setItem('instrument', returned);
    // The return parameters have done their job; a reload should not repeat the message.
    window.history.replaceState(null, '', window.location.pathname);
  }
  if (authorization === 'authorized') say('Authorized with Amazon Payments. Setting up your instrument…', 'ok');
  else if (authorization === 'aborted') say('Authorization cancelled at Amazon Payments.', 'warn');
  else if (authorization) say(`Authorization failed (${authorization}).`, 'bad');

  try {
    ({ body: session } = await store('/session'));
  } catch (error) {
    say(`The store is unavailable: ${error.message}`, 'bad');
    return;
  }
  renderCatalogue(session.catalogue);
  connectLibrary();
  instrumentId =
    returned ||
    localStorage.getItem('instrument') ||
    session.instruments.find((i) => i.status === 'RUNNING')?.instrumentId;
  if (instrumentId) await loadInstrument();
  else showSetup();
}

start();
