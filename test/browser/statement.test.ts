// The storefront's statement view in a real browser (headless Chromium) against the real stack:
// the buyer's recorded operations page back and forth without repeats or gaps, and the CSV
// download adds up to the balance the page shows. Screenshots go to test-artifacts/browser/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, launchChromium } from '../support/browser';
import { call, getStack, until, type Stack } from '../api/stack';

const PURCHASES = 6;

describe('storefront statement view in a browser (paging, CSV download)', function () {
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
    const context = await browser.newContext({ viewport: { width: 1100, height: 1400 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error('browser page error:', err));
    return page;
  }

  const rowIds = (page: Page) =>
    page.locator('#statement-lines tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') ?? ''));
  const pageLabel = (page: Page) => page.locator('#statement-page').textContent();

  it('pages through the purchases newest first and downloads a CSV that sums to the balance', async () => {
    const page = await newPage();
    await page.goto(`${stack.apiUrl}/`);
    await page.locator('#setup').waitFor({ state: 'visible' });
    await page.check('input[name="type"][value="prepaid"]');
    await page.fill('#amount', '20.00');
    await Promise.all([page.waitForURL(`${stack.sandboxUrl}/**`), page.click('#authorize')]);
    await Promise.all([page.waitForURL(`${stack.apiUrl}/**`), page.click('#approve')]);
    await page.locator('#state[data-state="active"]').waitFor({ timeout: 20_000 });
    const instrumentId = (await page.locator('#instrument-id').textContent())!;

    for (let i = 1; i <= PURCHASES; i++) {
      await page.locator('#catalogue button[data-item="song"]:enabled').click();
      await until(`purchase ${i}`, async () => (await page.locator('#purchase-count').textContent()) === String(i));
    }
    await until('balance $14.06', async () => (await page.locator('#primary-figure').textContent()) === '$14.06');

    // Everything the record holds, as the merchant API pages it: the initial funding and six songs.
    const recorded = await call(stack, 'GET', `/instruments/${instrumentId}/transactions?limit=50`);
    const expected: string[] = recorded.body.data.map((t: { id: string }) => t.id);
    assert.equal(expected.length, PURCHASES + 1, recorded.text);

    await until('the newest page shows the last purchase', async () => (await rowIds(page))[0] === expected[0]);
    const first = await rowIds(page);
    assert.deepEqual(first, expected.slice(0, 5));
    assert.equal(await pageLabel(page), 'Page 1');
    assert.ok(await page.locator('#statement-newer').isDisabled());
    assert.match((await page.locator('#statement-lines tr').first().textContent()) ?? '', /Song.*\$0\.99.*Success/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'statement-1-newest.png'), fullPage: true });

    await page.click('#statement-older');
    await until('page 2', async () => (await pageLabel(page)) === 'Page 2');
    const second = await rowIds(page);
    assert.deepEqual(second, expected.slice(5));
    assert.ok(await page.locator('#statement-older').isDisabled(), 'the last page');
    assert.equal(new Set([...first, ...second]).size, expected.length, 'no repeats, no gaps');
    assert.match((await page.locator('#statement-lines tr').last().textContent()) ?? '', /fund.*\$20\.00/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'statement-2-older.png'), fullPage: true });

    await page.click('#statement-newer');
    await until('back on page 1', async () => (await pageLabel(page)) === 'Page 1');
    assert.deepEqual(await rowIds(page), first);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#statement-csv')]);
    assert.equal(download.suggestedFilename(), `statement-${instrumentId}-start-now.csv`);
    const lines = readFileSync((await download.path())!, 'utf8')
      .trim()
      .split(/\r?\n/);
    const header = lines[0].split(',');
    const rows = lines.slice(1).map((line) => line.split(','));
    const at = (row: string[], name: string) => row[header.indexOf(name)];
    assert.equal(at(rows[0], 'operation'), 'opening');
    assert.equal(at(rows.at(-1)!, 'operation'), 'closing');
    assert.equal(at(rows.at(-1)!, 'running'), '14.06');
    const spent = rows
      .filter((r) => at(r, 'operation') === 'purchase' && at(r, 'status') === 'Success')
      .reduce((cents, r) => cents + Number(at(r, 'amount').replace('.', '')), 0);
    assert.equal(spent, PURCHASES * 99);
  });

  it("another session cannot read the buyer's statement", async () => {
    const page = await newPage();
    await page.goto(`${stack.apiUrl}/`);
    await page.locator('#setup').waitFor({ state: 'visible' });
    const someone = await call(stack, 'POST', '/customers/statement-owner/instruments', {
      body: { type: 'prepaid', fundingAmount: '5.00', currency: 'USD' },
    });
    const statuses = await page.evaluate(
      async (id) =>
        Promise.all(
          [`/store/api/instruments/${id}/transactions`, `/store/api/instruments/${id}/statement?format=csv`].map(
            async (url) => (await fetch(url)).status,
          ),
        ),
      someone.body.instrumentId as string,
    );
    assert.deepEqual(statuses, [404, 404]);
  });
});
