// "Your library" in a real browser (headless Chromium via playwright-core) against a real stack
// whose IPNs pass through a relay that holds each one 2.5 s: the storefront's backend registers its
// webhook endpoint at start, an approved purchase appears in the library, and the pending demo item
// appears only once its IPN arrives, pushed over server-sent events into the same page (no reload,
// no polling). Downloads are the buyer's alone; forged deliveries to the shop's webhook are refused.
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, launchChromium } from '../support/browser';
import { sign } from '../../client';
import { startProcessStack, type ProcessStack } from '../support/process-stack';
import { call, until } from '../api/stack';

const IPN_HOLD_MS = 2_500;

describe('storefront: Your library (fulfilment by webhook, pushed over SSE)', function () {
  this.timeout(180_000);
  let stack: ProcessStack;
  let browser: Browser;

  before(async function () {
    [stack, browser] = await Promise.all([
      startProcessStack({
        name: 'library',
        ipnRelay: true,
        apiEnv: { WEBHOOK_POLL_MS: '50', WEBHOOK_RETRY_INITIAL_MS: '100', WEBHOOK_ALLOW_PRIVATE_URLS: 'true' },
      }),
      launchChromium(),
    ]);
    stack.relay!.settings = { delayMs: [IPN_HOLD_MS, IPN_HOLD_MS], duplicate: 0 };
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  const api = () => ({ apiUrl: stack.apiUrl, apiKey: stack.apiKey });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1200 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error('browser page error:', err));
    return page;
  }

  it('registers its endpoint at start: purchase.approved and purchase.declined to /store/webhooks/fps', async () => {
    const endpoints = await until('storefront endpoint registered', async () => {
      const list = await call(api(), 'GET', '/webhook-endpoints');
      return list.body.data.filter((e: { url: string }) => e.url === `${stack.publicUrl}/store/webhooks/fps`);
    });
    assert.equal(endpoints.length, 1);
    assert.deepEqual(endpoints[0].events, ['purchase.approved', 'purchase.declined']);
    assert.equal(endpoints[0].status, 'enabled');
  });

  it('the pending demo item appears in Your library after its IPN, in the same page, without a reload', async () => {
    const page = await newPage();
    // Authorize through the CBUI page (the relay rewrites Host, so the shop's same-origin POSTs go to
    // the API itself); FPS returns the buyer to API_PUBLIC_URL, the relay.
    await page.goto(`${stack.apiUrl}/`);
    await page.locator('#setup').waitFor({ state: 'visible' });
    await page.fill('#amount', '20.00');
    await Promise.all([page.waitForURL(`${stack.sandboxUrl}/**`), page.click('#authorize')]);
    await page.locator('#approve').waitFor({ state: 'visible' });
    await Promise.all([page.waitForURL(`${stack.publicUrl}/**`, { waitUntil: 'commit' }), page.click('#approve')]);
    await page.locator('#state[data-state="active"]').waitFor({ timeout: 30_000 });
    const instrumentId = (await page.locator('#instrument-id').textContent())!;
    // The shop itself, straight from the API (the relay buffers whole answers, so it cannot carry a
    // stream); the session cookie is the same: cookies do not depend on the port.
    await page.goto(`${stack.apiUrl}/?instrument=${instrumentId}`);
    await page.locator('#state[data-state="active"]').waitFor();
    await page.locator('#library-live', { hasText: 'live' }).waitFor();
    assert.equal(await page.locator('#library-items li').count(), 0);

    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    await page.evaluate(() => ((globalThis as unknown as { marker: string }).marker = 'the same page'));

    await page.locator('#catalogue button[data-item="ebook"]:enabled').click();
    await page.locator('#library-items li[data-item="ebook"]').waitFor({ timeout: 15_000 });

    const ipnsBefore = stack.relay!.stats.forwarded;
    await page.locator('#catalogue button[data-item="pending-demo"]:enabled').click();
    await until('pending message', async () =>
      /Pending demo: payment pending/.test((await page.locator('#message').textContent()) ?? ''),
    );
    // Not in the library, and (read after that) still Pending in the record: it was absent while pending.
    assert.equal(await page.locator('#library-items li[data-item="pending-demo"]').count(), 0);
    const pending = await call(api(), 'GET', `/instruments/${instrumentId}/transactions?operation=purchase`);
    const demo = pending.body.data.find((t: { description?: string }) => t.description === 'Pending demo');
    assert.equal(demo?.status, 'Pending', pending.text);
    await page.screenshot({ path: path.join(ARTIFACTS, 'library-1-pending.png'), fullPage: true });

    await page.locator('#library-items li[data-item="pending-demo"]').waitFor({ timeout: 30_000 });
    assert.ok(stack.relay!.stats.forwarded > ipnsBefore, 'the IPN went through the relay first');
    const settled = await call(api(), 'GET', `/instruments/${instrumentId}/purchases/${demo.id}`);
    assert.equal(settled.body.transactionStatus, 'Success', settled.text);
    await until('balance $13.88 shown', async () => (await page.locator('#primary-figure').textContent()) === '$13.88');
    assert.match((await page.locator('#message').textContent()) ?? '', /Pending demo: payment confirmed/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'library-2-unlocked.png'), fullPage: true });

    // The same document all along, one event stream opened before, no library requests at all.
    assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: string }).marker), 'the same page');
    assert.equal(requests.filter((p) => p.startsWith('/store/api/library')).length, 0, requests.join('\n'));
    assert.deepEqual(
      (await page.locator('#library-items li').evaluateAll((lis) => lis.map((li) => (li as any).dataset.item))).sort(),
      ['ebook', 'pending-demo'],
    );

    // The download is the buyer's; another session gets 404.
    const href = (await page.locator('#library-items li[data-item="pending-demo"] a').getAttribute('href'))!;
    const download = await page.evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, disposition: r.headers.get('content-disposition'), text: await r.text() };
    }, href);
    assert.equal(download.status, 200);
    assert.match(download.disposition ?? '', /attachment/);
    assert.match(download.text, new RegExp(`Pending demo\\npurchase ${demo.id} on instrument ${instrumentId}`));
    const stranger = await newPage();
    await stranger.goto(`${stack.apiUrl}/`);
    await stranger.locator('#setup').waitFor({ state: 'visible' });
    assert.equal(await stranger.evaluate(async (url) => (await fetch(url)).status, href), 404);

    // A reload shows the same library (from the stream's first message).
    await page.reload();
    await page.locator('#library-items li[data-item="pending-demo"]').waitFor();
    assert.equal(await page.locator('#library-items li').count(), 2);
  });

  it('refuses deliveries to its webhook that are unsigned, signed with another secret or tampered', async () => {
    const body = JSON.stringify({
      id: 'evt_forged',
      type: 'purchase.approved',
      createdAt: new Date().toISOString(),
      instrumentId: 'ins_forged',
      customerId: 'cus_forged',
      sequence: 1,
      data: { id: 'free', amount: { amount: '4.99', currency: 'USD' }, description: 'E-book', status: 'Success' },
    });
    const post = (headers: Record<string, string>) =>
      fetch(`${stack.apiUrl}/store/webhooks/fps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
    for (const [headers, reason] of [
      [{}, 'malformed_header'],
      [{ 'fps-signature': sign(body, 'whsec_not_the_shops') }, 'mismatch'],
      [{ 'fps-signature': sign(body.replace('4.99', '0.01'), 'whsec_not_the_shops') }, 'mismatch'],
    ] as const) {
      const answer = await post(headers);
      assert.equal(answer.status, 400);
      const problem: any = await answer.json();
      assert.equal(problem.code, 'callback_unverified');
      assert.equal(problem.reason, reason);
    }
  });
});
