/**
 * The playground renders tool calls: driven in Debian's headless Chromium against a real app and a paced simulator
 * whose tool_calls fault streams the calls piece by piece. Screenshots go to test-artifacts/playground/.
 */
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { App } from '../../src/app';
import type { Db } from '../../src/infra/prisma';
import { SimClient } from '../support/simulator';
import { createTenant } from '../support/app';
import { PLAYGROUND_ARTIFACTS as ARTIFACTS, describeInChromium as d, playgroundSuite } from '../support/playground';

declare const document: any;

const TOOLS_JSON = JSON.stringify(
  [
    {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } },
    },
    { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } },
  ],
  null,
  2,
);

d('playground: tool calls in headless Chromium', () => {
  const suite = playgroundSuite(0.6);
  const pageErrors = suite.pageErrors;
  let simClient: SimClient;
  let app: App;
  let db: Db;
  beforeAll(() => {
    ({ app, db } = suite.parts());
    simClient = new SimClient(suite.parts().sim);
  });
  afterAll(async () => {
    await simClient?.close();
  });
  beforeEach(() => simClient.reset());

  async function openPage(key: string): Promise<Page> {
    const page = await suite.newPage({ width: 1280, height: 1100 });
    await page.goto(`${new URL(app.url).origin}/`);
    await page.fill('#key', key);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#profile option[value="chat_default"]', { state: 'attached' });
    await page.click('#tools-box summary');
    await page.fill('#tools', TOOLS_JSON);
    return page;
  }
  const text = (page: Page, sel: string) => page.locator(sel).innerText();
  const waitState = (page: Page, pattern: string) =>
    page.waitForFunction((p) => new RegExp(p).test(document.getElementById('stat-state')!.textContent!), pattern, { timeout: 15_000 });

  it('shows parallel calls, each with its name, id and arguments, as they stream', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key);
    await simClient.addFault({ model: 'deepseek-v4-flash', fault: 'tool_calls', shape: 'parallel' });
    await page.click('#send');
    await waitState(page, '^Completed \\(tool calls\\)$');
    const items = page.locator('#tool-calls li');
    expect(await items.count()).toBe(2);
    const requestId = await text(page, '#stat-request');
    const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });
    expect(row.outcome).toBe('COMPLETED');
    const names = await page.locator('#tool-calls li strong').allInnerTexts();
    expect(names).toEqual(['get_weather', 'get_time']);
    const args = (await page.locator('#tool-calls li .args').allInnerTexts()).map((a) => JSON.parse(a));
    expect(args).toEqual([{ city: expect.any(String), days: 1 }, { zone: expect.any(String) }]);
    for (const id of await page.locator('#tool-calls li .hint').allInnerTexts()) expect(id).toMatch(/^\(call_.+\)$/);
    expect((await text(page, '#output')).trim()).toBe('');
    expect(await text(page, '#stat-cost')).toBe(`$${(Number(row.costMicros) / 1e6).toFixed(6)}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'tool-calls.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it('shows a call cut mid-arguments as far as it came, and the outcome', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key);
    await simClient.addFault({ model: 'deepseek-v4-flash', fault: 'tool_calls', shape: 'cut' });
    await page.click('#send');
    await waitState(page, '^Ended: UPSTREAM_INTERRUPTED$');
    expect(await page.locator('#tool-calls li strong').allInnerTexts()).toEqual(['get_weather']);
    const partial = await text(page, '#tool-calls li .args');
    expect(partial.length).toBeGreaterThan(0);
    expect(() => JSON.parse(partial)).toThrow();
    expect(pageErrors).toEqual([]);
  });

  it('refuses tools that are not JSON before sending anything', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key);
    await page.fill('#tools', '[{ name: get_weather }]');
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('chat-error')!.textContent!.includes('Tools:'));
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
    expect(await page.locator('#send').isEnabled()).toBe(true);
    expect(await page.locator('#tool-calls-box').isHidden()).toBe(true);
  });
});
