/**
 * The web playground at GET /, driven in Debian's headless Chromium through playwright-core, against a real app
 * (Postgres, Redis) and a simulator slow enough that an answer takes about 1.5 s to stream. Screenshots go to
 * test-artifacts/playground/.
 */
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { App } from '../../src/app';
import type { Db } from '../../src/infra/prisma';
import { CHAT, createTenant, gqlOk, TEST_ADMIN_KEY } from '../support/app';
import { PLAYGROUND_ARTIFACTS as ARTIFACTS, describeInChromium as d, playgroundSuite } from '../support/playground';

// Browser globals of the callbacks that run in the page (page.evaluate, waitForFunction): the project's tsconfig has no
// DOM lib, and these declarations stay local to this module.
declare const document: any, window: any, sessionStorage: any, localStorage: any, MutationObserver: any;

/** 0.6: deepseek-v4-flash's 150 tokens at 60 tokens/s take about 1.6 s, so the stream is visible. */
const LATENCY_SCALE = 0.6;
const ME = `query { me { monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd } }`;

d('web playground in headless Chromium', () => {
  const suite = playgroundSuite(LATENCY_SCALE);
  const pageErrors = suite.pageErrors;
  let app: App;
  let db: Db;
  let origin: string;
  let foreignRequests: string[] = [];
  beforeAll(() => void ({ app, db, origin } = suite.parts()));

  /** A fresh browser context on GET /; with a key, pastes it and waits for the profiles to load. */
  async function openPage(key?: string, viewport = { width: 1280, height: 1000 }, opts: { blockWebSockets?: boolean } = {}): Promise<Page> {
    const page = await suite.newPage(viewport);
    // As a proxy that drops WebSockets would: the socket is closed before the gateway ever answers it.
    if (opts.blockWebSockets) await page.routeWebSocket(/.*/, (ws) => ws.close({ code: 1006, reason: 'blocked by the network' }));
    foreignRequests = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.host !== new URL(origin).host) foreignRequests.push(r.url());
    });
    await page.goto(`${origin}/`);
    if (key) {
      await page.fill('#key', key);
      await page.click('#key-form button[type=submit]');
      await page.waitForSelector('#profile option[value="chat_default"]', { state: 'attached' });
      await page.waitForFunction(() => document.getElementById('gauge-text')!.textContent!.includes('Spent'));
    }
    return page;
  }

  const text = (page: Page, sel: string) => page.locator(sel).innerText();
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const waitState = (page: Page, pattern: string) =>
    page.waitForFunction((p) => new RegExp(p).test(document.getElementById('stat-state')!.textContent!), pattern, { timeout: 15_000 });
  const ledgerRow = (requestId: string) => db.ledgerEntry.findUnique({ where: { requestId } });

  it('serves the page, its modules and the graphql-ws browser build from the gateway itself, nothing from elsewhere', async () => {
    const res = await fetch(`${origin}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/(src|href)="https?:/);
    const ws = await fetch(`${origin}/playground/vendor/graphql-ws.js`);
    expect(ws.status).toBe(200);
    expect(ws.headers.get('content-type')).toMatch(/javascript/);
    expect(await ws.text()).toContain('createClient');
    expect((await fetch(`${origin}/playground/app.js`)).status).toBe(200);
    expect((await fetch(`${origin}/playground/nope.js`)).status).toBe(404);

    const page = await openPage();
    expect(await page.evaluate(() => typeof (window as any).graphqlWs?.createClient)).toBe('function');
    // Every control has a label a screen reader reads out.
    for (const label of ['API key', 'Profile', 'Region', 'Max tokens', 'Prompt'])
      expect(await page.getByLabel(label, { exact: false }).count()).toBeGreaterThan(0);
    expect(foreignRequests).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('streams a completion token by token, then shows model, attempts, TTFT, tokens/s and the cost from the ledger', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '5' });
    const page = await openPage(t.key);
    expect(await page.evaluate(() => sessionStorage.getItem('gateway.key'))).toBe(t.key);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    // Record the output's length at every change, with the state shown at that moment.
    await page.evaluate(() => {
      const out = document.getElementById('output')!;
      const samples: Array<{ t: number; len: number; state: string }> = [];
      (window as any).samples = samples;
      new MutationObserver(() =>
        samples.push({ t: performance.now(), len: out.textContent!.length, state: document.getElementById('stat-state')!.textContent! }),
      ).observe(out, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await page.selectOption('#profile', 'chat_default');
    await page.fill('#prompt', 'Explain recursion in 200 words');
    await page.click('#send');
    await waitState(page, '^Streaming');
    expect(await page.locator('#output').getAttribute('aria-busy')).toBe('true');
    await waitState(page, '^Completed$');
    expect(await page.locator('#output').getAttribute('aria-busy')).toBe('false');

    const samples: Array<{ t: number; len: number; state: string }> = await page.evaluate(() => (window as any).samples);
    const streaming = samples.filter((s) => s.len > 0 && s.state !== 'Completed');
    // 150 tokens arrive one by one over about 1.5 s, each one growing the output, before the done stats appear.
    expect(streaming.length).toBeGreaterThanOrEqual(50);
    for (let i = 1; i < streaming.length; i++) expect(streaming[i]!.len).toBeGreaterThan(streaming[i - 1]!.len);
    expect(streaming.at(-1)!.t - streaming[0]!.t).toBeGreaterThan(700);

    expect(await text(page, '#stat-model')).toBe('deepseek-v4-flash');
    expect(await text(page, '#stat-attempts')).toMatch(/^1\s+deepseek-v4-flash: answered \(\d+ ms\)$/);
    expect(await text(page, '#stat-ttft')).toMatch(/^\d+ ms$/);
    const tps = Number((await text(page, '#stat-tps')).match(/^([\d.]+) tokens\/s$/)?.[1]);
    expect(tps).toBeGreaterThan(30); // 60 tokens/s at latency scale 0.6 is 100/s; well above 30 even on a slow machine
    expect(tps).toBeLessThan(1000);
    const requestId = await text(page, '#stat-request');
    const row = await ledgerRow(requestId);
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'COMPLETED', completionTokens: 150 });
    expect(await text(page, '#stat-cost')).toBe(`$${(Number(row!.costMicros) / 1e6).toFixed(6)}`);
    expect(await text(page, '#stat-tokens')).toBe(`${row!.promptTokens} / 150`);
    expect((await text(page, '#output')).trim().split(/\s+/)).toHaveLength(150);
    await shot(page, 'stream-done');
    expect(pageErrors).toEqual([]);
  });

  it('Stop cancels the stream: the output stops growing and the ledger row settles as CLIENT_CANCELLED', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key);
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('output')!.textContent!.length > 20);
    await page.click('#stop');
    const lenAtStop = (await text(page, '#output')).length;
    const requestId = await text(page, '#stat-request');
    await waitState(page, '^Stopped by you: recorded as CLIENT_CANCELLED$');

    const row = await ledgerRow(requestId);
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'CLIENT_CANCELLED', state: 'SETTLED' });
    expect(row!.completionTokens).toBeLessThan(150);
    // Nothing more arrived after Stop (the whole answer would be 150 words).
    expect((await text(page, '#output')).length).toBeLessThanOrEqual(lenAtStop + 20);
    expect((await text(page, '#output')).trim().split(/\s+/).length).toBeLessThan(150);
    expect(await page.locator('#stop').isDisabled()).toBe(true);
    expect(await page.locator('#send').isEnabled()).toBe(true);
    expect(await text(page, '#stat-cost')).toBe(`$${(Number(row!.costMicros) / 1e6).toFixed(6)}`);
    await shot(page, 'cancelled');
    expect(pageErrors).toEqual([]);
  });

  it("the budget gauge moves after a request: spent text and bar follow the tenant's spend", async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '0.0002' });
    const page = await openPage(t.key);
    expect(await text(page, '#gauge-text')).toBe('Spent $0.000000 (0.0%), held $0.000000, remaining $0.000200 of a $0.000200 budget.');
    expect(await page.locator('#gauge rect[data-part=spent]').getAttribute('width')).toBe('0%');

    await page.fill('#max-tokens', '100'); // 100 tokens x $0.25/M = $0.000025: the hold fits the budget
    await page.click('#send');
    await waitState(page, '^Completed$');
    await page.waitForFunction(() => !document.getElementById('gauge-text')!.textContent!.startsWith('Spent $0.000000'));

    const me = (await gqlOk(app.url, t.key, ME)).me;
    expect(me.spentThisMonthUsd).toBe('0.000025');
    const pct = ((Number(me.spentThisMonthUsd) / 0.0002) * 100).toFixed(1);
    expect(await text(page, '#gauge-text')).toBe(
      `Spent $${me.spentThisMonthUsd} (${pct}%), held $0.000000, remaining $${me.remainingThisMonthUsd} of a $0.000200 budget.`,
    );
    const width = await page.locator('#gauge rect[data-part=spent]').getAttribute('width');
    expect(parseFloat(width!)).toBeCloseTo(12.5, 5);
    expect(await page.locator('#gauge svg').getAttribute('aria-label')).toContain(`Spent $${me.spentThisMonthUsd}`);
    await shot(page, 'gauge');
    expect(pageErrors).toEqual([]);
  });

  it("draws the month's cost by model and by day from costReport, as SVG bars with text labels", async () => {
    const t = await createTenant(app.url);
    const msg = (profile: string) => ({ input: { profile, maxTokens: 40, messages: [{ role: 'USER', content: 'hi' }] } });
    await gqlOk(app.url, t.key, CHAT, msg('chat_default')); // deepseek-v4-flash
    await gqlOk(app.url, t.key, CHAT, msg('fast_classify')); // qwen3-8b, far cheaper
    const month = new Date().toISOString().slice(0, 7);
    const rep = await gqlOk(
      app.url,
      t.key,
      `query($m: String!) { m: costReport(month: $m, groupBy: MODEL) { rows { key costUsd } } d: costReport(month: $m, groupBy: DAY) { rows { key costUsd } } }`,
      { m: month },
    );
    const cost = (rows: Array<{ key: string; costUsd: string }>, k: string) => rows.find((r) => r.key === k)!.costUsd;

    const page = await openPage(t.key);
    const flash = page.locator('#chart-model svg g[data-key="deepseek-v4-flash"]');
    const qwen = page.locator('#chart-model svg g[data-key="qwen3-8b"]');
    expect(await flash.locator('text').textContent()).toBe(`deepseek-v4-flash — $${cost(rep.m.rows, 'deepseek-v4-flash')}, 1 request`);
    expect(await qwen.locator('text').textContent()).toBe(`qwen3-8b — $${cost(rep.m.rows, 'qwen3-8b')}, 1 request`);
    expect(await flash.locator('rect').getAttribute('width')).toBe('100%');
    expect(parseFloat((await qwen.locator('rect').getAttribute('width'))!)).toBeLessThan(20);
    const today = new Date().toISOString().slice(0, 10);
    const day = page.locator(`#chart-day svg g[data-key="${today}"]`);
    expect(await day.locator('text').textContent()).toBe(`${today} — $${cost(rep.d.rows, today)}, 2 requests`);
    expect(await page.locator('#chart-model svg').getAttribute('aria-label')).toContain('deepseek-v4-flash');
    await shot(page, 'charts');
    expect(pageErrors).toEqual([]);
  });

  it('a request over the budget shows BUDGET_EXCEEDED with what is left', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '0.0001' });
    const page = await openPage(t.key);
    // chat_default holds 1024 tokens x $0.25/M = $0.000256 > $0.0001.
    await page.click('#send');
    await waitState(page, '^Failed$');
    const msg = await text(page, '#chat-error');
    expect(msg).toContain('Budget exceeded: $0.000100 is left this month');
    expect(msg).toContain('[BUDGET_EXCEEDED]');
    expect(await page.locator('#chat-error').getAttribute('role')).toBe('alert');
    expect(await text(page, '#output')).toBe('');
    await shot(page, 'budget-exceeded');
    expect(pageErrors).toEqual([]);
  });

  it('a rate-limited request says when to retry', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    const page = await openPage(t.key);
    await page.fill('#max-tokens', '5');
    await page.click('#send');
    await waitState(page, '^Completed$');
    await page.click('#send');
    await waitState(page, '^Failed$');
    const msg = await text(page, '#chat-error');
    expect(msg).toMatch(/^Error: Rate limited: too many requests or tokens this minute\. Retry in (\d+) s \(at .+\)\. \[RATE_LIMITED\]$/);
    const secs = Number(msg.match(/Retry in (\d+) s/)![1]);
    expect(secs).toBeGreaterThan(0);
    expect(secs).toBeLessThanOrEqual(61); // rolling window of one-second buckets: up to 61 s
    expect(pageErrors).toEqual([]);
  });

  it('admin view: refuses a wrong key, lists tenants with budget and spend, sets a budget and limits', async () => {
    // A name that sorts first: the admin view lists the first 200 tenants by name, and the test database keeps many.
    const t = await createTenant(app.url, { name: `0-admin-view-${Date.now().toString(36)}`, monthlyBudgetUsd: '3' });
    const page = await openPage();
    await page.click('#admin summary');
    await page.fill('#admin-key', 'not-the-admin-key');
    await page.click('#admin-key-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('admin-error')!.textContent!.includes('UNAUTHENTICATED'));

    await page.fill('#admin-key', TEST_ADMIN_KEY);
    await page.click('#admin-key-form button[type=submit]');
    const row = page.locator(`#tenants tr[data-tenant="${t.id}"]`);
    await row.waitFor();
    expect(await text(page, '#admin-error')).toBe('');
    const cells = await row.locator('th, td').allInnerTexts();
    expect(cells.slice(1, 5)).toEqual(['$3.000000', '$0.000000', '$0.000000', '$3.000000']);
    expect(cells[5]).toBe('none');

    await page.selectOption('#admin-tenant', t.id);
    expect(await page.inputValue('#admin-budget')).toBe('3.000000');
    await page.fill('#admin-budget', '12.5');
    await page.click('#set-budget');
    await page.waitForFunction((id) => document.querySelector(`#tenants tr[data-tenant="${id}"] td`)?.textContent === '$12.500000', t.id);
    expect(await text(page, '#admin-status')).toContain('is now $12.500000');

    await page.fill('#admin-rpm', '30');
    await page.fill('#admin-tpm', '');
    await page.click('#set-limits');
    await page.waitForFunction((id) => document.querySelectorAll(`#tenants tr[data-tenant="${id}"] td`)[4]?.textContent === '30', t.id);

    const after = (
      await gqlOk(app.url, TEST_ADMIN_KEY, `query($id: ID!) { tenant(id: $id) { monthlyBudgetUsd requestsPerMinute tokensPerMinute } }`, { id: t.id })
    ).tenant;
    expect(after).toEqual({ monthlyBudgetUsd: '12.500000', requestsPerMinute: 30, tokensPerMinute: null });
    // The shared test database holds many tenants: a screenshot of the admin view around this row, not the whole list.
    await row.scrollIntoViewIfNeeded();
    await page.locator('#limits-form').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin.png') });
    expect(pageErrors).toEqual([]);
  });

  it('falls back to SSE when the WebSocket cannot connect, shows the transport, streams and stops there too', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key, undefined, { blockWebSockets: true });
    expect(await text(page, '#stat-transport')).toMatch(/WebSocket/);
    await page.click('#send');
    await page.waitForFunction(() => /^SSE/.test(document.getElementById('stat-transport')!.textContent!));
    await waitState(page, '^Completed$');
    expect((await text(page, '#output')).trim().split(/\s+/)).toHaveLength(150);
    expect(await text(page, '#stat-cost')).toBe('$0.000038');
    // The next chat goes over SSE directly, and Stop ends it there: the ledger says CLIENT_CANCELLED.
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('output')!.textContent!.length > 10);
    await page.click('#stop');
    await waitState(page, '^Stopped by you: recorded as CLIENT_CANCELLED$');
    await shot(page, 'sse-fallback');
    expect(pageErrors).toEqual([]);
  });

  it('admin view creates a tenant (its key shown once and usable at once), creates another key and revokes it, names and limits a key and rotates it with a grace', async () => {
    const page = await openPage();
    await page.click('#admin summary');
    await page.fill('#admin-key', TEST_ADMIN_KEY);
    await page.click('#admin-key-form button[type=submit]');
    await page.waitForFunction(() => /tenant/.test(document.getElementById('admin-status')!.textContent!));
    const name = `0-created-in-playground-${Date.now().toString(36)}`;
    await page.fill('#new-tenant-name', name);
    await page.fill('#new-tenant-budget', '2');
    await page.click('#create-tenant');
    await page.waitForFunction(() => !document.getElementById('new-key')!.hidden);
    const firstKey = (await text(page, '#new-key-value')).trim();
    const created = await db.tenant.findFirst({ where: { name } });
    expect(created?.monthlyBudgetMicros).toBe(2_000_000n);
    expect(await page.inputValue('#admin-tenant')).toBe(created!.id);
    expect((await gqlOk(app.url, firstKey, '{ me { name } }')).me.name).toBe(name);
    // "Use this key" puts it in the chat's key field and loads the tenant.
    await page.click('#use-new-key');
    await page.waitForFunction((n) => document.getElementById('key-status')!.textContent!.includes(n), name);

    await page.waitForSelector('#keys tbody tr');
    await page.click('#create-key');
    await page.waitForFunction((k) => document.getElementById('new-key-value')!.textContent !== k, firstKey);
    const secondKey = (await text(page, '#new-key-value')).trim();
    await page.waitForFunction(() => document.querySelectorAll('#keys tbody tr').length === 2);
    // Revoke the second key by its row's button.
    const keys = await db.apiKey.findMany({ where: { tenantId: created!.id }, orderBy: { createdAt: 'asc' } });
    await page.click(`#keys tbody tr[data-key="${keys[1]!.id}"] button[aria-label^="Revoke"]`);
    await page.waitForFunction(() => /Revoked key/.test(document.getElementById('admin-status')!.textContent!));
    const refused = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secondKey}` },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(refused.status).toBe(401);
    expect((await gqlOk(app.url, firstKey, '{ me { name } }')).me.name).toBe(name);

    // The first key gets a name and its own limits, then is rotated with a grace: both secrets work meanwhile.
    const row = `#keys tbody tr[data-key="${keys[0]!.id}"]`;
    await page.fill(`${row} input[aria-label^="Name"]`, 'web app');
    await page.fill(`${row} input[aria-label^="Own monthly budget"]`, '1.5');
    await page.fill(`${row} input[aria-label^="Own requests per minute"]`, '30');
    await page.click(`${row} button[aria-label^="Save"]`);
    await page.waitForFunction(() => /Saved key/.test(document.getElementById('admin-status')!.textContent!));
    expect(await db.apiKey.findUnique({ where: { id: keys[0]!.id } })).toMatchObject({
      name: 'web app',
      monthlyBudgetMicros: 1_500_000n,
      requestsPerMinute: 30,
      tokensPerMinute: null,
    });
    await page.fill('#rotate-grace', '600');
    await page.click(`${row} button[aria-label^="Rotate"]`);
    await page.waitForFunction(() => /old secret works until/.test(document.getElementById('admin-status')!.textContent!));
    const rotatedKey = (await text(page, '#new-key-value')).trim();
    expect(rotatedKey).not.toBe(firstKey);
    for (const k of [firstKey, rotatedKey]) expect((await gqlOk(app.url, k, '{ me { name } }')).me.name).toBe(name);
    await page.waitForFunction(() => /old secret valid until/.test(document.querySelector('#keys tbody')!.textContent!));
    expect(await page.inputValue(`${row} input[aria-label^="Name"]`)).toBe('web app');
    await shot(page, 'admin-keys');
    expect(pageErrors).toEqual([]);
  });

  it('works at phone width and from the keyboard: Tab to Send, Enter streams, Enter on Stop cancels', async () => {
    const t = await createTenant(app.url);
    const page = await openPage(t.key, { width: 375, height: 800 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    // One column: the spend card sits below the chat card.
    const chat = (await page.locator('#chat-form').boundingBox())!;
    const gauge = (await page.locator('#gauge').boundingBox())!;
    expect(gauge.y).toBeGreaterThan(chat.y + chat.height);

    await page.focus('#prompt');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('send');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('output')!.textContent!.length > 10);
    // Focus moved to Stop when Send was disabled.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('stop');
    await page.keyboard.press('Enter');
    await waitState(page, '^Stopped by you: recorded as CLIENT_CANCELLED$');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('send');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await shot(page, 'phone');
    expect(pageErrors).toEqual([]);
  });
});
