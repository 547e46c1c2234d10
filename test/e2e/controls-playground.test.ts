/**
 * The playground's admin view shows and edits suspension, model access lists and the global model switch: driven
 * in Debian's headless Chromium against a real app and simulator. Screenshots go to test-artifacts/playground/.
 */
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { App } from '../../src/app';
import type { Db } from '../../src/infra/prisma';
import { TEST_ADMIN_KEY, createTenant, gql } from '../support/app';
import { PLAYGROUND_ARTIFACTS as ARTIFACTS, describeInChromium as d, playgroundSuite } from '../support/playground';

declare const document: any;

d('playground: suspension and model access in headless Chromium', () => {
  const suite = playgroundSuite(0);
  const pageErrors = suite.pageErrors;
  let app: App;
  let db: Db;
  beforeAll(() => void ({ app, db } = suite.parts()));

  /** The admin view with the admin key, tenants and models loaded, `tenantId` selected. */
  async function openAdmin(tenantId: string): Promise<Page> {
    const page = await suite.newPage({ width: 1280, height: 1400 });
    await page.goto(`${new URL(app.url).origin}/`);
    await page.click('#admin summary');
    await page.fill('#admin-key', TEST_ADMIN_KEY);
    await page.click('#admin-key-form button[type=submit]');
    await page.waitForSelector('#models-admin tbody tr[data-model="qwen3-8b"]');
    await page.selectOption('#admin-tenant', tenantId);
    return page;
  }
  const status = (page: Page, pattern: string) =>
    page.waitForFunction((p) => new RegExp(p).test(document.getElementById('admin-status')!.textContent!), pattern);

  it('suspends and resumes the selected tenant, sets its deny list, and disables and enables a model', async () => {
    // A name that sorts first: the admin view lists the first 200 tenants by name.
    const t = await createTenant(app.url, { name: `0-controls-${Date.now().toString(36)}` });
    const page = await openAdmin(t.id);
    expect(await page.locator('#suspension-state').innerText()).toBe('Active.');

    await page.fill('#suspend-reason', 'unpaid invoice');
    await page.click('#suspend');
    await status(page, '^Suspended “');
    expect(await page.locator('#suspension-state').innerText()).toMatch(/^Suspended since .*: unpaid invoice\.$/);
    expect(await page.locator(`#tenants tr[data-tenant="${t.id}"] td`).last().innerText()).toBe('suspended');
    const refused = await gql(app.url, t.key, '{ me { id } }');
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
    await page.click('#resume');
    await status(page, '^Resumed “');
    expect((await gql(app.url, t.key, '{ me { id } }')).errors).toBeUndefined();

    await page.selectOption('#access-mode', 'DENY');
    await page.check('#access-models input[value="deepseek-v4-flash"]');
    await page.click('#save-access');
    await status(page, 'all but deepseek-v4-flash');
    expect(await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).toMatchObject({ modelAccessMode: 'DENY', modelAccessList: ['deepseek-v4-flash'] });
    // Reselecting the tenant shows its saved list.
    expect(await page.isChecked('#access-models input[value="deepseek-v4-flash"]')).toBe(true);

    try {
      await page.click('#models-admin tbody tr[data-model="qwen3-8b"] button');
      await status(page, 'qwen3-8b is now disabled');
      expect((await db.model.findUniqueOrThrow({ where: { id: 'qwen3-8b' } })).enabled).toBe(false);
      expect(await page.locator('#models-admin tbody tr[data-model="qwen3-8b"] td').nth(1).innerText()).toBe('disabled');
      await page.screenshot({ path: path.join(ARTIFACTS, 'admin-access.png'), fullPage: true });
      await page.click('#models-admin tbody tr[data-model="qwen3-8b"] button');
      await status(page, 'qwen3-8b is now enabled');
    } finally {
      await db.model.update({ where: { id: 'qwen3-8b' }, data: { enabled: true } });
    }
    expect(pageErrors).toEqual([]);
  });

  it('shows a refused change in words and changes nothing', async () => {
    const t = await createTenant(app.url, { name: `0-controls-${Date.now().toString(36)}` });
    const page = await openAdmin(t.id);
    await page.selectOption('#access-mode', 'ALLOW');
    await page.click('#save-access');
    await page.waitForFunction(() => /needs 1 to 200 model ids/.test(document.getElementById('admin-error')!.textContent!));
    expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).modelAccessMode).toBe('ALL');
    expect(pageErrors).toEqual([]);
  });
});
