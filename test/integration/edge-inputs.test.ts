import type { App } from '../../src/app';
import type { Db } from '../../src/infra/prisma';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, hello, subscribeAll, TEST_ADMIN_KEY, uniqueName, wsClient, type GqlResponse } from '../support/app';
import { gatewaySuite } from '../support/suite';

/**
 * Issue 11 items 6 and 8, and the audit of wrong values the API takes: inputs Postgres or the gate cannot hold are
 * BAD_USER_INPUT naming the argument, with nothing written, instead of a 500 or a tenant locked out by 503s.
 */

let app: App;
let db: Db;
const suite = gatewaySuite();
const clients = suite.clients;

beforeAll(async () => void ({ app, db } = await suite.start()));

function expectBadInput(r: GqlResponse, field: string, status: number | number[] = 200) {
  expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  expect(r.errors![0]!.message).toContain(field);
  expect(Array.isArray(status) ? status : [status]).toContain(r.status);
  expect(JSON.stringify(r)).not.toMatch(/prisma|invalid byte sequence|0x00|out of range|stacktrace/i);
}

const NUL = '\u0000';

describe('a NUL character in any string argument (item 8)', () => {
  let t: { id: string; key: string; keyId: string };
  beforeAll(async () => {
    t = await createTenant(app.url);
  });
  const written = async () => ({
    ledger: await db.ledgerEntry.count({ where: { tenantId: t.id } }),
    keys: await db.idempotencyKey.count({ where: { tenantId: t.id } }),
    overrides: await db.profileOverride.count({ where: { tenantId: t.id } }),
    audit: await db.auditEntry.count({ where: { tenantId: t.id } }),
  });

  it.each([
    ['input.idempotencyKey', hello('fast_classify', { maxTokens: 5, idempotencyKey: `k${NUL}1` })],
    ['input.profile', hello(`fast_classify${NUL}`, { maxTokens: 5 })],
    ['input.messages[0].content', { input: { profile: 'fast_classify', maxTokens: 5, messages: [{ role: 'USER', content: `a${NUL}b` }] } }],
  ])('chat with a NUL in %s: BAD_USER_INPUT naming it, no ledger row, no key, no upstream call', async (field, vars) => {
    const before = await written();
    expectBadInput(await gql(app.url, t.key, CHAT, vars), field);
    expect(await written()).toEqual(before);
  });

  it('chatStream with a NUL in a message: BAD_USER_INPUT naming it, nothing written', async () => {
    const before = await written();
    const c = wsClient(app.url, t.key);
    clients.push(c);
    const { events, error } = await subscribeAll(c, CHAT_STREAM, { input: { profile: 'fast_classify', messages: [{ role: 'USER', content: `x${NUL}` }] } });
    expect(events).toEqual([]);
    expect(error[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(error[0].message).toContain('input.messages[0].content');
    expect(await written()).toEqual(before);
  });

  it('admin mutations: createTenant name, setProfileOverride profile and fallbacks, nothing written', async () => {
    const prefix = uniqueName('nul');
    expectBadInput(
      await gql(app.url, TEST_ADMIN_KEY, 'mutation($i: CreateTenantInput!) { createTenant(input: $i) { tenant { id } } }', { i: { name: `${prefix}${NUL}x` } }),
      'input.name',
    );
    expect(await db.tenant.count({ where: { name: { startsWith: prefix } } })).toBe(0);
    const set = 'mutation($t: ID!, $p: String!, $f: [String!]) { setProfileOverride(tenantId: $t, profile: $p, model: "qwen3-8b", fallbacks: $f) { model } }';
    const before = await written();
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: `chat_default${NUL}` }), 'profile');
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', f: ['glm-5', `qwen3-32b${NUL}`] }), 'fallbacks[1]');
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, 'mutation($id: ID!) { revokeApiKey(id: $id) }', { id: `${t.keyId}${NUL}` }), 'id');
    expect(await written()).toEqual(before);
  });

  it.each([
    ['month', 'query($v: String!) { costReport(month: $v, groupBy: DAY) { totalUsd } }', '2026-11'],
    ['id', 'query($v: ID!) { request(id: $v) { requestId } }', '00000000-0000-4000-8000-000000000000'],
    ['tenantId', 'query($v: ID) { apiKeys(tenantId: $v) { id } }', ''],
  ])('a read with a NUL in %s: BAD_USER_INPUT naming it', async (field, query, base) => {
    expectBadInput(await gql(app.url, t.key, query, { v: `${base}${NUL}` }), field);
  });

  it('tenants(after) with a NUL (admin): BAD_USER_INPUT naming after', async () => {
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, 'query($a: String) { tenants(after: $a) { id } }', { a: `a${NUL}` }), 'after');
  });
});

describe('a DateTime outside what Postgres holds (item 8)', () => {
  let t: { id: string; key: string; keyId: string };
  beforeAll(async () => {
    t = await createTenant(app.url);
  });

  it('requests(before: "-200000-01-01T00:00:00Z") as a literal: BAD_USER_INPUT naming before', async () => {
    expectBadInput(await gql(app.url, t.key, '{ requests(before: "-200000-01-01T00:00:00Z") { requestId } }'), 'before');
  });

  it('as a variable, far future or year 0: BAD_USER_INPUT naming before, for requests and auditLog', async () => {
    for (const v of ['+275000-01-01T00:00:00Z', '0000-12-31T23:59:59Z', '+010000-01-01T00:00:00Z']) {
      expectBadInput(await gql(app.url, t.key, 'query($b: DateTime) { requests(before: $b) { requestId } }', { b: v }), 'before');
      expectBadInput(await gql(app.url, TEST_ADMIN_KEY, 'query($b: DateTime) { auditLog(before: $b) { id } }', { b: v }), 'before');
    }
  });

  it('the bounds themselves are accepted', async () => {
    for (const v of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z']) {
      expect((await gqlOk(app.url, t.key, 'query($b: DateTime) { requests(before: $b) { requestId } }', { b: v })).requests).toEqual([]);
    }
  });
});

describe('amounts the gate cannot hold exactly (item 6)', () => {
  const BUDGET = 'mutation($t: ID!, $b: Usd) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: $b) { monthlyBudgetUsd } }';
  const PRICE = 'mutation($o: Usd!, $i: Usd) { setModelPrice(model: "glm-5", outputUsdPerMillion: $o, inputUsdPerMillion: $i) { id } }';
  const BOUND = '9007199254.740991';

  it('setTenantBudget("9999999999"): BAD_USER_INPUT naming monthlyBudgetUsd and the bound; budget and audit unchanged', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '2' });
    const r = await gql(app.url, TEST_ADMIN_KEY, BUDGET, { t: t.id, b: '9999999999' });
    expectBadInput(r, 'monthlyBudgetUsd');
    expect(r.errors![0]!.message).toContain(BOUND);
    expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).monthlyBudgetMicros).toBe(2_000_000n);
    expect(await db.auditEntry.count({ where: { tenantId: t.id, action: 'setTenantBudget' } })).toBe(0);
    // The tenant is not locked out: its chats still run.
    expect((await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))).chat.requestId).toBeTruthy();
  });

  it('createTenant with a budget one micro-dollar over the bound: BAD_USER_INPUT, no tenant', async () => {
    const name = uniqueName('big');
    expectBadInput(
      await gql(app.url, TEST_ADMIN_KEY, 'mutation($i: CreateTenantInput!) { createTenant(input: $i) { tenant { id } } }', {
        i: { name, monthlyBudgetUsd: '9007199254.740992' },
      }),
      'monthlyBudgetUsd',
    );
    expect(await db.tenant.count({ where: { name } })).toBe(0);
  });

  it('a budget of exactly the bound is kept exact: chats run (no 503), spent and remaining add up to it', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: BOUND });
    const chat = (await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))).chat;
    const me = (await gqlOk(app.url, t.key, '{ me { monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd } }')).me;
    expect(me.monthlyBudgetUsd).toBe(BOUND);
    expect(me.spentThisMonthUsd).toBe(chat.usage.costUsd);
    expect(me.heldUsd).toBe('0.000000');
    const toMicros = (s: string) => BigInt(s.replace('.', ''));
    expect(toMicros(me.remainingThisMonthUsd) + toMicros(me.spentThisMonthUsd)).toBe(2n ** 53n - 1n);
  });

  it('setModelPrice("99999999999999") (was a 500: BIGINT overflow): BAD_USER_INPUT naming the price; price, history and audit unchanged', async () => {
    const state = async () => ({
      model: await db.model.findUnique({ where: { id: 'glm-5' } }),
      history: await db.modelPrice.count({ where: { modelId: 'glm-5' } }),
      audit: await db.auditEntry.count({ where: { targetType: 'model', targetId: 'glm-5' } }),
    });
    const before = await state();
    const out = await gql(app.url, TEST_ADMIN_KEY, PRICE, { o: '99999999999999' });
    expectBadInput(out, 'outputUsdPerMillion');
    expect(out.errors![0]!.message).toContain(BOUND);
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, PRICE, { o: '1.92', i: '9007199254.740992' }), 'inputUsdPerMillion');
    expect(await state()).toEqual(before);
  });
});

describe('wrong values of admin mutations (audit)', () => {
  it('removeProfileOverride of an unknown profile: BAD_USER_INPUT listing the valid ones (not a silent false); an existing override stays', async () => {
    const t = await createTenant(app.url);
    await gqlOk(app.url, TEST_ADMIN_KEY, 'mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "qwen3-8b") { model } }', {
      t: t.id,
    });
    const r = await gql(app.url, TEST_ADMIN_KEY, 'mutation($t: ID!) { removeProfileOverride(tenantId: $t, profile: "chat_defualt") }', { t: t.id });
    expectBadInput(r, 'profile');
    expect(r.errors![0]!.message).toContain('chat_default');
    expect(await db.profileOverride.count({ where: { tenantId: t.id } })).toBe(1);
    expect(await db.auditEntry.count({ where: { tenantId: t.id, action: 'removeProfileOverride' } })).toBe(0);
    // A known profile without an override is still a plain false.
    expect(
      (await gqlOk(app.url, TEST_ADMIN_KEY, 'mutation($t: ID!) { removeProfileOverride(tenantId: $t, profile: "long_form") }', { t: t.id }))
        .removeProfileOverride,
    ).toBe(false);
  });

  it('setProfileOverride with an unknown region, and createTenant without a name: refused by the schema (400), nothing written', async () => {
    const t = await createTenant(app.url);
    const r = await gql(
      app.url,
      TEST_ADMIN_KEY,
      'mutation($t: ID!, $r: Region) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "qwen3-8b", region: $r) { model } }',
      { t: t.id, r: 'EU_WEST' },
    );
    expectBadInput(r, '$r', 400);
    expect(await db.profileOverride.count({ where: { tenantId: t.id } })).toBe(0);
    const c = await gql(app.url, TEST_ADMIN_KEY, 'mutation($i: CreateTenantInput!) { createTenant(input: $i) { tenant { id } } }', {
      i: { monthlyBudgetUsd: '1' },
    });
    expectBadInput(c, 'name', 400);
  });
});

describe('wrong values of queries (audit)', () => {
  let t: { id: string; key: string; keyId: string };
  beforeAll(async () => {
    t = await createTenant(app.url);
  });

  it.each([
    ['requests first 0', '{ requests(first: 0) { requestId } }', 'first'],
    ['requests first 501', '{ requests(first: 501) { requestId } }', 'first'],
    ['costReport month 2026-13', '{ costReport(month: "2026-13", groupBy: DAY) { totalUsd } }', 'month'],
    ['costReport month 26-11', '{ costReport(month: "26-11", groupBy: DAY) { totalUsd } }', 'month'],
    ['costProjection empty mix', '{ costProjection(monthlyOutputTokens: 1000, mix: []) { totalUsd } }', 'mix'],
    ['costProjection shares summing to 0.5', '{ costProjection(monthlyOutputTokens: 1000, mix: [{ model: "glm-5", share: 0.5 }]) { totalUsd } }', 'mix'],
    [
      'costProjection negative share',
      '{ costProjection(monthlyOutputTokens: 1000, mix: [{ model: "glm-5", share: -1 }, { model: "qwen3-8b", share: 2 }]) { totalUsd } }',
      'mix',
    ],
    ['costProjection unknown model', '{ costProjection(monthlyOutputTokens: 1000, mix: [{ model: "gpt-99", share: 1 }]) { totalUsd } }', 'gpt-99'],
  ])('tenant: %s is BAD_USER_INPUT naming it', async (_label, query, field) => {
    expectBadInput(await gql(app.url, t.key, query), field);
  });

  it.each([
    ['tenants first 0', '{ tenants(first: 0) { id } }', 'first'],
    ['tenants first 501', '{ tenants(first: 501) { id } }', 'first'],
    ['auditLog first 0', '{ auditLog(first: 0) { id } }', 'first'],
    ['auditLog first 501', '{ auditLog(first: 501) { id } }', 'first'],
  ])('admin: %s is BAD_USER_INPUT naming it', async (_label, query, field) => {
    expectBadInput(await gql(app.url, TEST_ADMIN_KEY, query), field);
  });

  // A variable that does not fit its type is refused by GraphQL itself, naming the variable and the type's range.
  it('costProjection monthlyOutputTokens over 2^53 - 1 or negative (as a variable): BAD_USER_INPUT naming the variable and the range', async () => {
    for (const v of [-1, 2 ** 53, 1.5]) {
      const r = await gql(app.url, t.key, 'query($n: Count!) { costProjection(monthlyOutputTokens: $n, mix: [{ model: "glm-5", share: 1 }]) { totalUsd } }', {
        n: v,
      });
      expectBadInput(r, '$n', [200, 400]);
      expect(r.errors![0]!.message).toContain('from 0 to 9007199254740991');
    }
  });

  it('an admin naming an unknown tenant in a read: NOT_FOUND', async () => {
    const MISSING = '00000000-0000-4000-8000-000000000000';
    for (const q of [
      'query($t: ID) { requests(tenantId: $t) { requestId } }',
      'query($t: ID) { apiKeys(tenantId: $t) { id } }',
      'query($t: ID) { costReport(month: "2026-11", groupBy: DAY, tenantId: $t) { totalUsd } }',
    ]) {
      const r = await gql(app.url, TEST_ADMIN_KEY, q, { t: MISSING });
      expect(r.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    }
  });

  it('setTenantLimits with a value over Int: BAD_USER_INPUT naming the variable, limits unchanged', async () => {
    const r = await gql(app.url, TEST_ADMIN_KEY, 'mutation($t: ID!, $n: Int) { setTenantLimits(tenantId: $t, requestsPerMinute: $n) { id } }', {
      t: t.id,
      n: 2 ** 31,
    });
    expectBadInput(r, '$n', [200, 400]);
    expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).requestsPerMinute).toBeNull();
  });
});
