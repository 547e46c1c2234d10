import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY, uniqueName } from '../support/app';
import { until } from '../support/wait';

/**
 * Key rotation, key names and limits, and named admin keys on two instances over real Postgres and Redis: a rotated
 * key's old secret works on both until its grace ends and then on neither; reports-only admin keys change nothing;
 * the audit log names the admin key that made each change; every wrong input is refused with its code and writes
 * nothing.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
let sim: Simulator;
let a: App;
let b: App;

beforeAll(async () => {
  sim = await startSim(0);
  [a, b] = await Promise.all([startApp({}, sim), startApp({}, sim)]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await sim?.close();
  await db.$disconnect();
});

const ME = `{ me { id } }`;
const ROTATE = `mutation($id: ID!, $g: Int!) { rotateApiKey(id: $id, graceSeconds: $g) { id key previousKeyExpiresAt } }`;
const ROTATE_ADMIN = `mutation($id: ID!, $g: Int!) { rotateAdminKey(id: $id, graceSeconds: $g) { id key previousKeyExpiresAt } }`;
const CREATE_ADMIN_KEY = `mutation($n: String!, $s: AdminKeyScope!) { createAdminKey(name: $n, scope: $s) { id key name scope } }`;
const SET_NAME = `mutation($id: ID!, $n: String) { setApiKeyName(id: $id, name: $n) { id name } }`;
const SET_LIMITS = `mutation($id: ID!, $b: Usd, $r: Int, $t: Int) { setApiKeyLimits(id: $id, monthlyBudgetUsd: $b, requestsPerMinute: $r, tokensPerMinute: $t) { id } }`;
const API_KEYS = `query($t: ID) { apiKeys(tenantId: $t) { id name prefix monthlyBudgetUsd requestsPerMinute tokensPerMinute rotatedAt previousKeyExpiresAt lastUsedAt } }`;
const AUDIT = `query($t: ID) { auditLog(tenantId: $t, first: 20) { actor actorKeyId action targetId } }`;

const code = (r: { errors?: { extensions?: Record<string, unknown> }[] }) => r.errors?.[0]?.extensions?.code;
const auditCount = () => db.auditEntry.count();

test('rotation: the old secret works on both instances until the grace ends, then UNAUTHENTICATED on both; id, name, limits and spend stay', async () => {
  const t = await createTenant(a.url, {});
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_NAME, { id: t.keyId, n: 'ci deploy' });
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_LIMITS, { id: t.keyId, b: '5', r: 50 });
  // Both instances have the old key cached.
  for (const app of [a, b]) expect((await gql(app.url, t.key, CHAT, hello())).errors).toBeUndefined();

  const rotated = (await gqlOk<any>(b.url, TEST_ADMIN_KEY, ROTATE, { id: t.keyId, g: 3 })).rotateApiKey;
  expect(rotated.id).toBe(t.keyId);
  expect(rotated.key).not.toBe(t.key);
  const endsAt = Date.parse(rotated.previousKeyExpiresAt);
  expect(endsAt).toBeGreaterThan(Date.now());
  for (const app of [a, b]) {
    expect((await gql(app.url, t.key, ME)).errors).toBeUndefined(); // still within the grace
    expect((await gql(app.url, rotated.key, CHAT, hello())).errors).toBeUndefined();
  }
  // The grace ends on its own on both instances (no admin change moves the epoch then).
  for (const app of [a, b]) await until(async () => code(await gql(app.url, t.key, ME)) === 'UNAUTHENTICATED', 'the old secret refused', 10_000, 100);
  expect(Date.now()).toBeGreaterThanOrEqual(endsAt);
  const refused = await gql(a.url, t.key, ME);
  expect(refused.errors![0]!.message).toContain('rotated');
  for (const app of [a, b]) expect((await gql(app.url, rotated.key, ME)).errors).toBeUndefined();

  const view = ((await gqlOk<any>(a.url, TEST_ADMIN_KEY, API_KEYS, { t: t.id })).apiKeys as any[])[0];
  expect(view).toMatchObject({ id: t.keyId, name: 'ci deploy', monthlyBudgetUsd: '5.000000', requestsPerMinute: 50, prefix: rotated.key.slice(0, 12) });
  expect(view.rotatedAt).not.toBeNull();
  expect(view.lastUsedAt).not.toBeNull(); // kept at most once a minute per key and instance
  // Requests of both secrets are the same key's: its ledger rows carry the one id.
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id, apiKeyId: t.keyId } })).toBe(4);
});

test('rotation with grace 0 stops the old secret at once on both instances; rotating again ends an earlier grace', async () => {
  const t = await createTenant(a.url, {});
  for (const app of [a, b]) expect((await gql(app.url, t.key, ME)).errors).toBeUndefined();
  const r1 = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, ROTATE, { id: t.keyId, g: 600 })).rotateApiKey;
  expect((await gql(b.url, t.key, ME)).errors).toBeUndefined();
  const r2 = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, ROTATE, { id: t.keyId, g: 0 })).rotateApiKey;
  expect(r2.previousKeyExpiresAt).toBeNull();
  for (const app of [a, b]) {
    expect(code(await gql(app.url, t.key, ME))).toBe('UNAUTHENTICATED');
    expect(code(await gql(app.url, r1.key, ME))).toBe('UNAUTHENTICATED');
    expect((await gql(app.url, r2.key, ME)).errors).toBeUndefined();
  }
});

test('every wrong rotation, name or limit is refused with its code, names the argument, and writes nothing', async () => {
  const t = await createTenant(a.url, {});
  const revoked = await createTenant(a.url, {});
  await gqlOk(a.url, TEST_ADMIN_KEY, `mutation($id: ID!) { revokeApiKey(id: $id) }`, { id: revoked.keyId });
  const before = { audit: await auditCount(), key: await db.apiKey.findUnique({ where: { id: t.keyId } }) };
  const cases: [string, Record<string, unknown>, string, string?][] = [
    [ROTATE, { id: t.keyId, g: -1 }, 'BAD_USER_INPUT', 'graceSeconds'],
    [ROTATE, { id: t.keyId, g: 604_801 }, 'BAD_USER_INPUT', 'graceSeconds'],
    [ROTATE, { id: '00000000-0000-4000-8000-000000000000', g: 10 }, 'NOT_FOUND'],
    [ROTATE, { id: 'not-a-uuid', g: 10 }, 'NOT_FOUND'],
    [ROTATE, { id: revoked.keyId, g: 10 }, 'CONFLICT'],
    [SET_NAME, { id: t.keyId, n: '' }, 'BAD_USER_INPUT', 'name'],
    [SET_NAME, { id: t.keyId, n: '<script>' }, 'BAD_USER_INPUT', 'name'],
    [SET_NAME, { id: t.keyId, n: 'x'.repeat(101) }, 'BAD_USER_INPUT', 'name'],
    [SET_LIMITS, { id: t.keyId, r: 0 }, 'BAD_USER_INPUT', 'requestsPerMinute'],
    [SET_LIMITS, { id: t.keyId, t: -5 }, 'BAD_USER_INPUT', 'tokensPerMinute'],
    [SET_LIMITS, { id: t.keyId, b: '-1' }, 'BAD_USER_INPUT', 'monthlyBudgetUsd'],
    [SET_LIMITS, { id: t.keyId, b: '1.0000001' }, 'BAD_USER_INPUT', 'monthlyBudgetUsd'],
    [SET_LIMITS, { id: t.keyId }, 'BAD_USER_INPUT', 'monthlyBudgetUsd'],
    [SET_LIMITS, { id: 'nope', r: 5 }, 'NOT_FOUND'],
  ];
  for (const [q, vars, expected, field] of cases) {
    const r = await gql(a.url, TEST_ADMIN_KEY, q, vars);
    expect({ vars, code: code(r) }).toEqual({ vars, code: expected });
    if (field) expect(r.errors![0]!.extensions).toMatchObject({ field });
    expect(r.errors![0]!.message.length).toBeGreaterThan(10);
  }
  // A tenant key may not rotate or limit keys, not even its own.
  expect(code(await gql(a.url, t.key, ROTATE, { id: t.keyId, g: 10 }))).toBe('FORBIDDEN');
  expect(code(await gql(a.url, t.key, SET_LIMITS, { id: t.keyId, r: 5 }))).toBe('FORBIDDEN');
  expect(await auditCount()).toBe(before.audit);
  // lastUsedAt aside (the tenant key's own refused calls used it), the key is as it was.
  expect({ ...(await db.apiKey.findUnique({ where: { id: t.keyId } }))!, lastUsedAt: null }).toEqual({ ...before.key!, lastUsedAt: null });
  expect((await gql(b.url, t.key, ME)).errors).toBeUndefined();
});

test('admin keys: reports-only reads and is FORBIDDEN on every change; a full key changes and the audit log names it; only the root key manages admin keys', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '10' });
  const reports = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, CREATE_ADMIN_KEY, { n: uniqueName('reports'), s: 'REPORTS' })).createAdminKey;
  const full = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, CREATE_ADMIN_KEY, { n: uniqueName('ops'), s: 'FULL' })).createAdminKey;
  expect(reports.key).toMatch(/^lga_/);

  // Reads work for both, on both instances.
  for (const app of [a, b]) {
    for (const k of [reports.key, full.key]) {
      expect((await gql(app.url, k, `query($id: ID!) { tenant(id: $id) { id } }`, { id: t.id })).errors).toBeUndefined();
      expect((await gql(app.url, k, AUDIT, { t: t.id })).errors).toBeUndefined();
      expect((await gql(app.url, k, API_KEYS, { t: t.id })).errors).toBeUndefined();
    }
  }
  const before = await auditCount();
  const changes: [string, Record<string, unknown>][] = [
    [`mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: "1") { id } }`, { t: t.id }],
    [`mutation($i: CreateTenantInput!) { createTenant(input: $i) { tenant { id } } }`, { i: { name: uniqueName() } }],
    [`mutation($t: ID!) { createApiKey(tenantId: $t) { id } }`, { t: t.id }],
    [ROTATE, { id: t.keyId, g: 10 }],
    [SET_LIMITS, { id: t.keyId, r: 5 }],
    [CREATE_ADMIN_KEY, { n: uniqueName('x'), s: 'FULL' }],
  ];
  for (const [q, vars] of changes) {
    const r = await gql(b.url, reports.key, q, vars);
    expect(code(r)).toBe('FORBIDDEN');
  }
  expect(code(await gql(a.url, reports.key, CHAT, hello()))).toBe('FORBIDDEN'); // an admin key is no tenant
  // A full key changes the gateway, but cannot mint, rotate or revoke admin keys.
  expect(code(await gql(a.url, full.key, CREATE_ADMIN_KEY, { n: uniqueName('x'), s: 'FULL' }))).toBe('FORBIDDEN');
  expect(code(await gql(a.url, full.key, ROTATE_ADMIN, { id: reports.id, g: 0 }))).toBe('FORBIDDEN');
  expect(code(await gql(a.url, full.key, `mutation($id: ID!) { revokeAdminKey(id: $id) }`, { id: reports.id }))).toBe('FORBIDDEN');
  expect(await auditCount()).toBe(before);

  await gqlOk(b.url, full.key, `mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: "7") { id } }`, { t: t.id });
  await gqlOk(b.url, TEST_ADMIN_KEY, `mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: "8") { id } }`, { t: t.id });
  const log = (await gqlOk<any>(a.url, reports.key, AUDIT, { t: t.id })).auditLog as any[];
  expect(log.slice(0, 2)).toEqual([
    { actor: 'admin', actorKeyId: null, action: 'setTenantBudget', targetId: t.id },
    { actor: full.name, actorKeyId: full.id, action: 'setTenantBudget', targetId: t.id },
  ]);

  // Revoked by the root key: refused on both instances at their next request.
  expect((await gqlOk<any>(a.url, TEST_ADMIN_KEY, `mutation($id: ID!) { revokeAdminKey(id: $id) }`, { id: reports.id })).revokeAdminKey).toBe(true);
  for (const app of [a, b]) expect(code(await gql(app.url, reports.key, AUDIT, {}))).toBe('UNAUTHENTICATED');
  const rootLog = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, `{ auditLog(first: 5) { actor actorKeyId action targetId } }`)).auditLog as any[];
  expect(rootLog[0]).toEqual({ actor: 'admin', actorKeyId: null, action: 'revokeAdminKey', targetId: reports.id });
  expect((await gqlOk<any>(b.url, full.key, `{ adminKeys { id revokedAt } }`)).adminKeys.find((k: any) => k.id === reports.id).revokedAt).not.toBeNull();
});

test('admin keys rotate like tenant keys; wrong names and duplicates are refused and write nothing', async () => {
  const k = (await gqlOk<any>(a.url, TEST_ADMIN_KEY, CREATE_ADMIN_KEY, { n: uniqueName('rot'), s: 'FULL' })).createAdminKey;
  for (const app of [a, b]) expect((await gql(app.url, k.key, `{ adminKeys { id } }`)).errors).toBeUndefined();
  const r = (await gqlOk<any>(b.url, TEST_ADMIN_KEY, ROTATE_ADMIN, { id: k.id, g: 0 })).rotateAdminKey;
  expect(r.key).toMatch(/^lga_/);
  for (const app of [a, b]) {
    expect(code(await gql(app.url, k.key, `{ adminKeys { id } }`))).toBe('UNAUTHENTICATED');
    expect((await gql(app.url, r.key, `{ adminKeys { id } }`)).errors).toBeUndefined();
  }
  const before = await auditCount();
  for (const [n, expected] of [
    ['', 'BAD_USER_INPUT'],
    [' ', 'BAD_USER_INPUT'],
    ['a'.repeat(101), 'BAD_USER_INPUT'],
    [k.name, 'CONFLICT'],
  ] as const) {
    const res = await gql(a.url, TEST_ADMIN_KEY, CREATE_ADMIN_KEY, { n, s: 'REPORTS' });
    expect({ n, code: code(res) }).toEqual({ n, code: expected });
    expect(res.errors![0]!.extensions).toMatchObject({ field: 'name' });
  }
  expect(code(await gql(a.url, TEST_ADMIN_KEY, ROTATE_ADMIN, { id: k.id, g: 604_801 }))).toBe('BAD_USER_INPUT');
  expect(code(await gql(a.url, TEST_ADMIN_KEY, ROTATE_ADMIN, { id: 'nope', g: 1 }))).toBe('NOT_FOUND');
  expect(await auditCount()).toBe(before);
});
