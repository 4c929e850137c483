// The storefront end to end in a real browser (headless Chromium via playwright-core) against the
// real stack: authorize a prepaid and a postpaid instrument through the sandbox's CBUI page, buy
// catalogue items, and check what moved in the sandbox ledger. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, launchChromium } from '../support/browser';
import { config } from '../../config';
import { call, getStack, sandboxAdmin, until, type Stack } from '../api/stack';

const SCREENSHOT_FOR_README = path.join(config().root, 'docs', 'storefront.png');

describe('storefront in a browser (prepaid and postpaid journeys)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let browser: Browser;

  before(async function () {
    [stack, browser] = await Promise.all([getStack(), launchChromium()]);
  });
  after(async () => {
    await browser?.close();
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error('browser page error:', err));
    return page;
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const figure = (page: Page) => page.locator('#primary-figure').textContent();

  /** From the storefront through the sandbox CBUI page (clicking Approve) back to an active instrument. */
  async function authorize(page: Page, type: 'prepaid' | 'postpaid', amount: string, prefix: string): Promise<string> {
    await page.goto(`${stack.apiUrl}/`);
    await page.locator('#setup').waitFor({ state: 'visible' });
    await page.check(`input[name="type"][value="${type}"]`);
    await page.fill('#amount', amount);
    await shot(page, `${prefix}-1-setup`);
    await Promise.all([page.waitForURL(`${stack.sandboxUrl}/**`), page.click('#authorize')]);
    await page.locator('#approve').waitFor({ state: 'visible' });
    assert.match(await page.content(), new RegExp(amount.replace('.', '\\.')));
    await shot(page, `${prefix}-2-cbui`);
    await Promise.all([page.waitForURL(`${stack.apiUrl}/**`), page.click('#approve')]);
    await page.locator('#state[data-state="active"]').waitFor({ timeout: 20_000 });
    const instrumentId = (await page.locator('#instrument-id').textContent())!;
    assert.match(instrumentId, /^ins_/);
    // The return parameters are gone from the address bar.
    assert.equal(new URL(page.url()).search, '');
    return instrumentId;
  }

  async function buy(page: Page, itemId: string, expectMessage: RegExp): Promise<void> {
    await page.locator(`#catalogue button[data-item="${itemId}"]:enabled`).click();
    await until(
      `message ${expectMessage}`,
      async () => expectMessage.test((await page.locator('#message').textContent()) ?? ''),
      20_000,
    );
  }

  /** The instrument through the merchant API, settled: nothing pending. */
  async function settled(instrumentId: string) {
    return until(`instrument ${instrumentId} settled`, async () => {
      const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
      return got.status === 200 && got.body.pending.length === 0 && got.body;
    });
  }

  /** The sandbox's view of the money: every successful purchase is one Success PAY there. */
  async function ledgerPurchases(instrumentId: string) {
    const snapshot = await settled(instrumentId);
    const purchases = snapshot.transactions.filter((t: any) => t.operation === 'purchase');
    const rows = [];
    for (const t of purchases) {
      const { transactions } = await sandboxAdmin(
        stack,
        `/admin/transactions?callerReference=${encodeURIComponent(t.callerReference)}`,
      );
      rows.push(...transactions);
    }
    return { snapshot, rows };
  }

  it('prepaid: fund $20.00, buy an e-book, a song, a pending item, get declined once; the ledger agrees', async () => {
    const page = await newPage();
    const instrumentId = await authorize(page, 'prepaid', '20.00', 'prepaid');
    await until('balance $20.00', async () => (await figure(page)) === '$20.00');

    await buy(page, 'ebook', /Bought E-book for \$4\.99/);
    await until('balance $15.01', async () => (await figure(page)) === '$15.01');
    await buy(page, 'song', /Bought Song for \$0\.99/);
    await until('balance $14.02', async () => (await figure(page)) === '$14.02');
    await buy(page, 'pending-demo', /Pending demo: payment pending/);
    await until(
      'pending settled, balance $12.89',
      async () => (await figure(page)) === '$12.89' && (await page.locator('#state').textContent()) === 'active',
      20_000,
    );
    await buy(page, 'declined-demo', /Declined demo: payment declined \(TransactionDenied\)/);
    assert.equal(await figure(page), '$12.89');
    assert.equal(await page.locator('#purchase-count').textContent(), '3');
    // The table is redrawn from the instrument after each answer: wait for the decline's row.
    let rows: string[] = [];
    await until('the declined purchase listed', async () => {
      rows = await page.locator('#transactions tr').allTextContents();
      return rows.some((r) => r.includes('$0.51') && /Declined|Failure/.test(r));
    });
    assert.ok(
      rows.some((r) => r.includes('$1.13') && r.includes('Success')),
      rows.join('\n'),
    );

    const link = await page.locator('#temporal-link').getAttribute('href');
    assert.equal(link, `${config().temporal.uiUrl}/namespaces/default/workflows/instrument-${instrumentId}`);
    await shot(page, 'prepaid-3-after-purchases');
    // The README's screenshot is refreshed on request only, so a test run leaves the tree clean.
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1')
      copyFileSync(path.join(ARTIFACTS, 'prepaid-3-after-purchases.png'), SCREENSHOT_FOR_README);

    const { rows: ledger } = await ledgerPurchases(instrumentId);
    const succeeded = ledger
      .filter((r: any) => r.operation === 'PAY' && r.status === 'Success')
      .map((r: any) => r.amount.value)
      .sort();
    assert.deepEqual(succeeded, ['0.99', '1.13', '4.99']);
    const prepaid = await sandboxAdmin(stack, `/admin/prepaid/${ledger[0].instrumentId}`);
    assert.equal(prepaid.balance.value, '12.89');
    assert.equal(prepaid.spentTotal.value, '7.11');
  });

  it('postpaid: a $50.00 credit line; purchases accrue debt; the ledger agrees', async () => {
    const page = await newPage();
    const instrumentId = await authorize(page, 'postpaid', '50.00', 'postpaid');
    assert.equal(await page.locator('#primary-label').textContent(), 'Debt');
    assert.equal(await page.locator('#secondary-figure').textContent(), '$50.00');
    await until('debt $0.00', async () => (await figure(page)) === '$0.00');

    await buy(page, 'game-skin', /Bought Game skin for \$2\.49/);
    await until('debt $2.49', async () => (await figure(page)) === '$2.49');
    await buy(page, 'ebook', /Bought E-book for \$4\.99/);
    await until('debt $7.48', async () => (await figure(page)) === '$7.48');
    await shot(page, 'postpaid-3-after-purchases');

    const { rows: ledger } = await ledgerPurchases(instrumentId);
    assert.deepEqual(
      ledger
        .filter((r: any) => r.status === 'Success')
        .map((r: any) => r.amount.value)
        .sort(),
      ['2.49', '4.99'],
    );
    const credit = await sandboxAdmin(stack, `/admin/credit/${ledger[0].instrumentId}`);
    assert.equal(credit.debt.value, '7.48');
    assert.equal(credit.creditLimit.value, '50.00');
  });

  it('a reload keeps the instrument; another browser (session) cannot see it', async () => {
    const page = await newPage();
    const instrumentId = await authorize(page, 'prepaid', '5.00', 'session');
    await page.reload();
    await page.locator('#state[data-state="active"]').waitFor();
    assert.equal(await page.locator('#instrument-id').textContent(), instrumentId);

    const stranger = await newPage();
    await stranger.goto(`${stack.apiUrl}/`);
    await stranger.locator('#setup').waitFor({ state: 'visible' });
    const answer = await stranger.evaluate(
      async (id) => (await fetch(`/store/api/instruments/${id}`)).status,
      instrumentId,
    );
    assert.equal(answer, 404);
  });
});
