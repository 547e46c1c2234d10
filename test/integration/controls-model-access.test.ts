import { createPrisma } from '../../src/infra/prisma';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL } from '../support/env';
import { TEST_ADMIN_KEY, createTenant, gql, gqlOk, hello, startApp, startSim } from '../support/app';

/** Issue 16: per-tenant allow and deny lists and the admin's global model switch, set on A and obeyed on B. */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
let sim: Simulator;
let a: App;
let b: App;

const ACCESS = `mutation($id: ID!, $mode: ModelAccessMode!, $models: [ID!]) { setTenantModelAccess(tenantId: $id, mode: $mode, models: $models) { id modelAccess { mode models } } }`;
const ENABLE = `mutation($model: ID!, $enabled: Boolean!) { setModelEnabled(model: $model, enabled: $enabled) { id enabled } }`;
const OVERRIDE = `mutation($id: ID!, $profile: String!, $model: String!, $fallbacks: [String!]) { setProfileOverride(tenantId: $id, profile: $profile, model: $model, fallbacks: $fallbacks) { model } }`;
const CHAT = `mutation($input: ChatInput!) { chat(input: $input) { model outcome attempts { model ok } } }`;
const PROFILES = `{ profiles { name model fallbacks } }`;
const MODELS = `{ models { id enabled } }`;
const simAdmin = () => new URL(sim.url).origin;
const v1 = (app: App) => app.url.replace(/\/graphql$/, '/v1');

beforeAll(async () => {
  sim = await startSim(0);
  [a, b] = await Promise.all([startApp({}, sim, { background: false }), startApp({}, sim, { background: false })]);
});
afterAll(async () => {
  await fetch(`${simAdmin()}/__sim/faults`, { method: 'DELETE' });
  await Promise.all([a?.stop(), b?.stop()]);
  await sim?.close();
  await db.$disconnect();
});

const chat = (app: App, key: string, profile: string) => gql(app.url, key, CHAT, hello(profile, { maxTokens: 10 }));
const profiles = async (app: App, key: string) => Object.fromEntries((await gqlOk(app.url, key, PROFILES)).profiles.map((p: any) => [p.name, p]));
const v1Models = async (app: App, key: string) => {
  const r = await fetch(`${v1(app)}/models`, { headers: { authorization: `Bearer ${key}` } });
  return ((await r.json()) as any).data as Array<{ id: string; gateway: { model: string; fallbacks: string[] } }>;
};
const v1Chat = async (app: App, key: string, model: string) => {
  const r = await fetch(`${v1(app)}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: r.status, body: (await r.json()) as any };
};
const fault = (model: string, kind: string) =>
  fetch(`${simAdmin()}/__sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, fault: kind, times: 1 }),
  });

test('a deny list set on A: on B the denied model is left out of profiles, overrides and fallbacks, cannot be named, and is not listed', async () => {
  const t = await createTenant(a.url);
  const set = await gqlOk(a.url, TEST_ADMIN_KEY, ACCESS, { id: t.id, mode: 'DENY', models: ['deepseek-v4-flash'] });
  expect(set.setTenantModelAccess.modelAccess).toEqual({ mode: 'DENY', models: ['deepseek-v4-flash'] });

  // chat_default's head is denied: its first fallback answers, and the denied model is never tried.
  const r = await chat(b, t.key, 'chat_default');
  expect(r.errors).toBeUndefined();
  expect(r.data!.chat.model).toBe('hunyuan-turbos');
  expect(r.data!.chat.attempts.map((x: any) => x.model)).toEqual(['hunyuan-turbos']);
  const p = await profiles(b, t.key);
  expect(p.chat_default).toMatchObject({ model: 'hunyuan-turbos', fallbacks: ['qwen3-32b'] });
  expect(p.chat_speed).toMatchObject({ model: 'step-3.5-flash', fallbacks: [] });
  // An override naming it routes to the override's fallbacks.
  await gqlOk(a.url, TEST_ADMIN_KEY, OVERRIDE, { id: t.id, profile: 'fast_classify', model: 'deepseek-v4-flash', fallbacks: ['qwen3-8b'] });
  expect((await chat(b, t.key, 'fast_classify')).data!.chat.model).toBe('qwen3-8b');

  const models = (await gqlOk(b.url, t.key, MODELS)).models.map((m: any) => m.id);
  expect(models).not.toContain('deepseek-v4-flash');
  expect(models).toHaveLength(14);
  const listed = await v1Models(b, t.key);
  expect(listed.map((m) => m.id)).not.toContain('deepseek-v4-flash');
  expect(listed.find((m) => m.id === 'step-3.5-flash')!.gateway.fallbacks).toEqual([]);
  const named = await v1Chat(b, t.key, 'deepseek-v4-flash');
  expect(named.status).toBe(403);
  expect(named.body.error).toMatchObject({ type: 'permission_error', code: 'model_not_allowed', param: 'model' });
  expect(named.body.error.message).toContain('deepseek-v4-flash');
  // Only the two answered requests have rows: the refused one wrote nothing.
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(2);
});

test('an allow list: a profile whose whole chain is outside it is FORBIDDEN naming its models, nothing written; ALL lifts it', async () => {
  const t = await createTenant(a.url);
  await gqlOk(a.url, TEST_ADMIN_KEY, ACCESS, { id: t.id, mode: 'ALLOW', models: ['qwen3-8b', 'hunyuan-turbo'] });

  expect((await chat(b, t.key, 'long_form')).data!.chat.model).toBe('hunyuan-turbo');
  const refused = await chat(b, t.key, 'chat_default');
  expect(refused.errors?.[0]?.extensions).toMatchObject({
    code: 'FORBIDDEN',
    reason: 'MODEL_NOT_ALLOWED',
    profile: 'chat_default',
    models: ['deepseek-v4-flash', 'hunyuan-turbos', 'qwen3-32b'],
  });
  expect(refused.errors?.[0]?.message).toMatch(/chat_default: none of its models/);
  expect(Object.keys(await profiles(b, t.key)).sort()).toEqual(['fast_classify', 'long_form']);
  expect((await v1Models(b, t.key)).map((m) => m.id).sort()).toEqual(['fast_classify', 'hunyuan-turbo', 'long_form', 'qwen3-8b']);
  const viaV1 = await v1Chat(b, t.key, 'chat_default');
  expect(viaV1.status).toBe(403);
  expect(viaV1.body.error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);

  const all = await gqlOk(a.url, TEST_ADMIN_KEY, ACCESS, { id: t.id, mode: 'ALL' });
  expect(all.setTenantModelAccess.modelAccess).toEqual({ mode: 'ALL', models: [] });
  expect((await chat(b, t.key, 'chat_default')).data!.chat.model).toBe('deepseek-v4-flash');
  const audit = await db.auditEntry.findMany({ where: { tenantId: t.id, action: 'setTenantModelAccess' }, orderBy: { id: 'asc' } });
  expect(audit.map((e) => e.newValue)).toEqual([
    { mode: 'ALLOW', models: ['qwen3-8b', 'hunyuan-turbo'] },
    { mode: 'ALL', models: [] },
  ]);
});

test("the admin's global switch, set on A: on B a disabled model is out of every chain, cannot be named, and is listed only to the admin", async () => {
  const t = await createTenant(a.url);
  try {
    for (const model of ['qwen3-8b', 'hunyuan-turbos']) {
      expect((await gqlOk(a.url, TEST_ADMIN_KEY, ENABLE, { model, enabled: false })).setModelEnabled).toEqual({ id: model, enabled: false });
    }
    // deepseek-v4-flash fails: the walk skips the disabled hunyuan-turbos and goes on to qwen3-32b.
    await fault('deepseek-v4-flash', 'http_500');
    const r = await chat(b, t.key, 'chat_default');
    expect(r.errors).toBeUndefined();
    expect(r.data!.chat.attempts).toEqual([
      { model: 'deepseek-v4-flash', ok: false },
      { model: 'qwen3-32b', ok: true },
    ]);
    const disabled = await chat(b, t.key, 'fast_classify');
    expect(disabled.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'MODEL_DISABLED', models: ['qwen3-8b'] });
    const named = await v1Chat(b, t.key, 'qwen3-8b');
    expect(named.status).toBe(403);
    expect(named.body.error.code).toBe('model_disabled');
    expect((await profiles(b, t.key)).chat_default.fallbacks).toEqual(['qwen3-32b']);
    expect((await gqlOk(b.url, t.key, MODELS)).models.map((m: any) => m.id)).not.toContain('qwen3-8b');
    const forAdmin = (await gqlOk(b.url, TEST_ADMIN_KEY, MODELS)).models;
    expect(forAdmin).toHaveLength(15);
    expect(forAdmin.find((m: any) => m.id === 'qwen3-8b').enabled).toBe(false);
  } finally {
    for (const model of ['qwen3-8b', 'hunyuan-turbos']) await gqlOk(a.url, TEST_ADMIN_KEY, ENABLE, { model, enabled: true });
  }
  expect((await chat(b, t.key, 'fast_classify')).data!.chat.model).toBe('qwen3-8b');
  const audit = await db.auditEntry.findMany({ where: { action: 'setModelEnabled', targetId: 'qwen3-8b' }, orderBy: { id: 'desc' }, take: 2 });
  expect(audit.map((e) => e.newValue)).toEqual([{ enabled: true }, { enabled: false }]);
});

test('wrong values of setTenantModelAccess and setModelEnabled are refused with their codes and write nothing', async () => {
  const t = await createTenant(a.url);
  const auditBefore = await db.auditEntry.count();
  const cases: Array<[string, string, Record<string, unknown>, string, string]> = [
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'DENY', models: ['qwen3-8b', 'gpt-9'] }, 'BAD_USER_INPUT', 'unknown model "gpt-9"'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'ALL', models: ['qwen3-8b'] }, 'BAD_USER_INPUT', 'mode ALL takes no models'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'ALLOW', models: [] }, 'BAD_USER_INPUT', 'needs 1 to 200 model ids'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'DENY' }, 'BAD_USER_INPUT', 'needs 1 to 200 model ids'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'ALLOW', models: Array.from({ length: 201 }, (_, i) => `m${i}`) }, 'BAD_USER_INPUT', 'needs 1 to 200'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'ALLOW', models: ['qwen3-8b', 'qwen3-8b'] }, 'BAD_USER_INPUT', 'listed twice'],
    [ACCESS, TEST_ADMIN_KEY, { id: t.id, mode: 'SOME', models: ['qwen3-8b'] }, 'BAD_USER_INPUT', 'ModelAccessMode'],
    [ACCESS, TEST_ADMIN_KEY, { id: 'not-a-uuid', mode: 'DENY', models: ['qwen3-8b'] }, 'NOT_FOUND', 'no tenant'],
    [ACCESS, t.key, { id: t.id, mode: 'DENY', models: ['qwen3-8b'] }, 'FORBIDDEN', 'needs the admin key'],
    [ENABLE, TEST_ADMIN_KEY, { model: 'gpt-9', enabled: false }, 'NOT_FOUND', 'no model "gpt-9"'],
    [ENABLE, TEST_ADMIN_KEY, { model: 'qwen3-8b', enabled: null }, 'BAD_USER_INPUT', 'enabled'],
    [ENABLE, t.key, { model: 'qwen3-8b', enabled: false }, 'FORBIDDEN', 'needs the admin key'],
  ];
  for (const [query, key, variables, code, message] of cases) {
    const r = await gql(b.url, key, query, variables);
    expect({ code: r.errors?.[0]?.extensions?.code, status: r.status < 500 }).toEqual({ code, status: true });
    expect(r.errors?.[0]?.message).toContain(message);
  }
  expect(await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).toMatchObject({ modelAccessMode: 'ALL', modelAccessList: [] });
  expect((await db.model.findUniqueOrThrow({ where: { id: 'qwen3-8b' } })).enabled).toBe(true);
  expect(await db.auditEntry.count()).toBe(auditBefore);
});
