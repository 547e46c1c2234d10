import type { Client } from 'graphql-ws';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import type { Db } from '../../src/infra/prisma';
import { monthOf } from '../../src/accounting/period';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, hello, subscribeAll, TEST_ADMIN_KEY, uniqueName, wsClient, type GqlResponse } from '../support/app';
import { gatewaySuite } from '../support/suite';

/**
 * Who may do what, black box over HTTP and graphql-ws: missing, unknown, malformed and revoked keys; the admin key
 * where a tenant is needed; a tenant key on admin operations and on another tenant's data. Every refusal is checked
 * for its code, its HTTP status, a clean body (no stack, SQL or key), and for having written nothing.
 */

let sim: Simulator;
let app: App;
let db: Db;
const suite = gatewaySuite();
const clients = suite.clients;
const track = (c: Client) => (clients.push(c), c);

const ME_Q = `query Me { me { id } }`;

beforeAll(async () => void ({ sim, app, db } = await suite.start()));

const simRequests = async (): Promise<number> => {
  const s = (await (await fetch(new URL(sim.url).origin + '/__sim/stats')).json()) as { requests: Record<string, number> };
  return Object.values(s.requests).reduce((a, b) => a + b, 0);
};

/** The response is refused with `code` (and `status` on HTTP), and carries nothing it must not: no stack, SQL, key. */
function expectRefused(r: GqlResponse, code: string, status: number, secrets: string[] = []) {
  expect(r.errors?.length).toBeGreaterThan(0);
  expect(r.errors![0]!.extensions?.code).toBe(code);
  expect(r.status).toBe(status);
  if (r.data) for (const v of Object.values(r.data)) expect(v).toBeNull();
  expectClean(r.errors, secrets);
}

function expectClean(errors: unknown, secrets: string[] = []) {
  const text = JSON.stringify(errors);
  expect(text).not.toMatch(/stacktrace|\bat .+:\d+:\d+|\bSELECT\b|\bINSERT\b|prisma/i);
  for (const s of [TEST_ADMIN_KEY, ...secrets]) expect(text).not.toContain(s);
}

describe('authentication over HTTP', () => {
  it('no Authorization header: UNAUTHENTICATED with HTTP 401, for queries and mutations alike', async () => {
    expectRefused(await gql(app.url, null, ME_Q), 'UNAUTHENTICATED', 401);
    expectRefused(await gql(app.url, null, `query Models { models { id } }`), 'UNAUTHENTICATED', 401);
    const name = uniqueName('anon');
    expectRefused(await gql(app.url, null, `mutation { createTenant(input: { name: "${name}" }) { tenant { id } } }`), 'UNAUTHENTICATED', 401);
    expect(await db.tenant.count({ where: { name } })).toBe(0);
  });

  it('an unknown key, a malformed header or an empty bearer: 401, and the key is not echoed', async () => {
    const guess = 'lgw_' + 'A'.repeat(32);
    expectRefused(await gql(app.url, guess, ME_Q), 'UNAUTHENTICATED', 401, [guess]);
    expectRefused(await gql(app.url, null, ME_Q, undefined, { authorization: `Basic ${guess}` }), 'UNAUTHENTICATED', 401, [guess]);
    expectRefused(await gql(app.url, null, ME_Q, undefined, { authorization: 'Bearer ' }), 'UNAUTHENTICATED', 401);
    // A near miss of the admin key is not the admin.
    expectRefused(await gql(app.url, TEST_ADMIN_KEY.slice(0, -1) + 'X', `query { tenants { id } }`), 'UNAUTHENTICATED', 401);
  });

  it('a chat with a bad key never reaches the upstream', async () => {
    const before = await simRequests();
    expectRefused(await gql(app.url, 'lgw_nope', CHAT, hello()), 'UNAUTHENTICATED', 401);
    expect(await simRequests()).toBe(before);
  });
});

describe('authentication over graphql-ws', () => {
  const closeCode = async (key: string | null) => {
    const { events, error } = await subscribeAll(track(wsClient(app.url, key)), CHAT_STREAM, hello());
    expect(events).toEqual([]);
    return (error as { code?: number } | null)?.code;
  };

  it('a bad or missing connection key closes the socket with 4401 (not retried by graphql-ws clients); nothing reaches the upstream', async () => {
    const before = await simRequests();
    expect(await closeCode('lgw_not-a-key')).toBe(4401);
    expect(await closeCode(null)).toBe(4401);
    expect(await simRequests()).toBe(before);
  });

  it('a revoked key cannot open a new connection', async () => {
    const t = await createTenant(app.url);
    expect((await subscribeAll(track(wsClient(app.url, t.key)), ME_Q, {})).error).toBeNull();
    await gqlOk(app.url, TEST_ADMIN_KEY, `mutation Revoke($id: ID!) { revokeApiKey(id: $id) }`, { id: t.keyId });
    expect(await closeCode(t.key)).toBe(4401);
    expectRefused(await gql(app.url, t.key, ME_Q), 'UNAUTHENTICATED', 401, [t.key]);
  });
});

describe('the admin key is not a tenant', () => {
  it('me, profiles and chat refuse it with FORBIDDEN 403; the chat never reaches the upstream', async () => {
    const before = await simRequests();
    expectRefused(await gql(app.url, TEST_ADMIN_KEY, ME_Q), 'FORBIDDEN', 403);
    expectRefused(await gql(app.url, TEST_ADMIN_KEY, `query { profiles { name } }`), 'FORBIDDEN', 403);
    expectRefused(await gql(app.url, TEST_ADMIN_KEY, CHAT, hello()), 'FORBIDDEN', 403);
    expect(await simRequests()).toBe(before);
  });

  it('chatStream refuses it with FORBIDDEN, before any upstream call', async () => {
    const before = await simRequests();
    const { events, error } = await subscribeAll(track(wsClient(app.url, TEST_ADMIN_KEY)), CHAT_STREAM, hello());
    expect(events).toEqual([]);
    expect(error?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expectClean(error);
    expect(await simRequests()).toBe(before);
  });

  it('but it may read any tenant and must name it', async () => {
    const t = await createTenant(app.url);
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, `query T($id: ID!) { tenant(id: $id) { id } }`, { id: t.id })).tenant.id).toBe(t.id);
    const r = await gql(app.url, TEST_ADMIN_KEY, `query { apiKeys { id } }`);
    expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(r.errors?.[0]?.message).toContain('tenantId');
  });
});

describe('a tenant key on admin operations', () => {
  let victim: { id: string; key: string; keyId: string };
  let caller: { id: string; key: string; keyId: string };

  beforeAll(async () => {
    victim = await createTenant(app.url, { monthlyBudgetUsd: '10', requestsPerMinute: 100 });
    caller = await createTenant(app.url);
    await gqlOk(app.url, TEST_ADMIN_KEY, `mutation Ov($t: ID!) { setProfileOverride(tenantId: $t, profile: "long_form", model: "glm-5") { model } }`, {
      t: victim.id,
    });
  });

  const HIJACK = uniqueName('hijack');
  /** Everything the mutations below could touch (scoped to this test's rows: other suites share the database). */
  const snapshot = async () => ({
    hijack: await db.tenant.count({ where: { name: HIJACK } }),
    tenants: await db.tenant.findMany({ where: { id: { in: [victim.id, caller.id] } }, orderBy: { id: 'asc' } }),
    keys: await db.apiKey.findMany({ where: { tenantId: { in: [victim.id, caller.id] } }, orderBy: { id: 'asc' }, select: { id: true, revokedAt: true } }),
    overrides: await db.profileOverride.findMany({ where: { tenantId: { in: [victim.id, caller.id] } }, orderBy: { id: 'asc' } }),
    model: await db.model.findUnique({ where: { id: 'glm-5' } }),
    prices: await db.modelPrice.count({ where: { modelId: 'glm-5' } }),
    audit: await db.auditEntry.count({ where: { OR: [{ tenantId: { in: [victim.id, caller.id] } }, { targetId: 'glm-5' }] } }),
  });

  const ADMIN_MUTATIONS: Array<[string, string, () => Record<string, unknown>]> = [
    ['createTenant', `mutation($n: String!) { createTenant(input: { name: $n }) { tenant { id } apiKey { key } } }`, () => ({ n: HIJACK })],
    ['setTenantBudget', `mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: "1000000") { id } }`, () => ({ t: victim.id })],
    ['setTenantBudget (own tenant)', `mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: null) { id } }`, () => ({ t: caller.id })],
    ['setTenantLimits', `mutation($t: ID!) { setTenantLimits(tenantId: $t, requestsPerMinute: null) { id } }`, () => ({ t: victim.id })],
    [
      'setProfileOverride',
      `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "qwen3-8b") { model } }`,
      () => ({ t: caller.id }),
    ],
    ['removeProfileOverride', `mutation($t: ID!) { removeProfileOverride(tenantId: $t, profile: "long_form") }`, () => ({ t: victim.id })],
    ['createApiKey', `mutation($t: ID!) { createApiKey(tenantId: $t) { id key } }`, () => ({ t: victim.id })],
    ['revokeApiKey', `mutation($id: ID!) { revokeApiKey(id: $id) }`, () => ({ id: victim.keyId })],
    ['setModelPrice', `mutation { setModelPrice(model: "glm-5", outputUsdPerMillion: "0.000001") { id } }`, () => ({})],
  ];

  it.each(ADMIN_MUTATIONS)('%s: FORBIDDEN 403, and nothing changed', async (_name, doc, vars) => {
    const before = await snapshot();
    expectRefused(await gql(app.url, caller.key, doc, vars()), 'FORBIDDEN', 403, [caller.key]);
    expect(await snapshot()).toEqual(before);
  });

  it('admin-only reads refuse it too: tenant (even its own), tenants, auditLog', async () => {
    expectRefused(await gql(app.url, caller.key, `query($id: ID!) { tenant(id: $id) { id } }`, { id: victim.id }), 'FORBIDDEN', 403);
    expectRefused(await gql(app.url, caller.key, `query($id: ID!) { tenant(id: $id) { id } }`, { id: caller.id }), 'FORBIDDEN', 403);
    expectRefused(await gql(app.url, caller.key, `query { tenants { id } }`), 'FORBIDDEN', 403);
    expectRefused(await gql(app.url, caller.key, `query { auditLog { id } }`), 'FORBIDDEN', 403);
  });

  it('the victim is untouched: its key, budget, limits and override still hold', async () => {
    const me = await gqlOk(app.url, victim.key, `query { me { monthlyBudgetUsd requestsPerMinute } profiles { name model overridden } }`);
    expect(me.me).toEqual({ monthlyBudgetUsd: '10.000000', requestsPerMinute: 100 });
    expect(me.profiles.find((p: { name: string }) => p.name === 'long_form')).toEqual({ name: 'long_form', model: 'glm-5', overridden: true });
  });
});

describe('cross-tenant reads', () => {
  let a: { id: string; key: string; keyId: string };
  let b: { id: string; key: string; keyId: string };
  let bRequest: string;

  beforeAll(async () => {
    a = await createTenant(app.url);
    b = await createTenant(app.url);
    bRequest = (await gqlOk(app.url, b.key, CHAT, hello('fast_classify', { maxTokens: 5 }))).chat.requestId;
  });

  const month = monthOf(new Date());
  const READS: Array<[string, string, () => Record<string, unknown>]> = [
    [
      'costReport',
      `query($t: ID, $m: String!) { costReport(month: $m, groupBy: MODEL, tenantId: $t) { totalUsd rows { key } } }`,
      () => ({ t: b.id, m: month }),
    ],
    ['tenant', `query($t: ID!) { tenant(id: $t) { id spentThisMonthUsd } }`, () => ({ t: b.id })],
    ['apiKeys', `query($t: ID) { apiKeys(tenantId: $t) { id prefix } }`, () => ({ t: b.id })],
    ['requests', `query($t: ID) { requests(tenantId: $t) { requestId } }`, () => ({ t: b.id })],
    ['profileOverrides', `query($t: ID) { profileOverrides(tenantId: $t) { profile } }`, () => ({ t: b.id })],
  ];

  it.each(READS)('%s of another tenant: FORBIDDEN 403, nothing of it in the body', async (_name, doc, vars) => {
    const r = await gql(app.url, a.key, doc, vars());
    expectRefused(r, 'FORBIDDEN', 403, [a.key, b.key, bRequest]);
    expect(JSON.stringify(r)).not.toContain(b.keyId);
  });

  it('the same reads of its own tenant succeed (so the refusals above are about the tenant, not the query)', async () => {
    for (const [, doc, vars] of READS.filter(([n]) => n !== 'tenant')) {
      const r = await gql(app.url, b.key, doc, { ...vars(), t: b.id });
      expect(r.errors).toBeUndefined();
    }
  });

  it("request(id) of another tenant's request is NOT_FOUND, as if it did not exist", async () => {
    const q = `query($id: ID!) { request(id: $id) { requestId model } }`;
    const r = await gql(app.url, a.key, q, { id: bRequest });
    expect(r.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(r.data?.request ?? null).toBeNull();
    expectClean(r.errors, [a.key, b.key]);
    expect((await gqlOk(app.url, b.key, q, { id: bRequest })).request.requestId).toBe(bRequest);
  });
});
