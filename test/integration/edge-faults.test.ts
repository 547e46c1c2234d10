import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { makeEpoch } from '../../src/infra/epoch';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY, uniqueName, type GqlResponse } from '../support/app';
import { until as waitUntil } from '../support/wait';

/**
 * Issue 11 items 4, 7 and the auth part of 11 under real faults: an admin change Redis cannot announce is rolled
 * back (never committed and stale), cached state has a hard maximum age, Postgres unreachable is
 * SERVICE_UNAVAILABLE (503) for every operation, not a masked 500, and unknown keys and failing addresses cost
 * Postgres nothing (proved by cutting Postgres under them).
 */

let sim: Simulator;
let db: Db;

beforeAll(async () => {
  sim = await startSim(0);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
});

afterAll(async () => {
  await sim?.close();
  await db?.$disconnect();
});

const waitFor = (cond: () => Promise<boolean>, timeoutMs = 10_000) => waitUntil(cond, 'the condition', timeoutMs, 25);

/** A TCP proxy in front of one port: `cut` drops every connection and refuses new ones until `restore`. */
async function tcpProxy(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    sockets.add(client).add(upstream);
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const cut = () => {
    refusing = true;
    for (const s of sockets) s.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut,
    restore: () => void (refusing = false),
    close: () => new Promise<void>((r) => (cut(), server.close(() => r()))),
  };
}

/** A redis-server of this test's own, so it may refuse writes without disturbing other test files. */
async function ownRedis(): Promise<{ url: string; client: Redis; stop(): void }> {
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise((r) => free.close(r));
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  await waitFor(() =>
    client.connect().then(
      () => true,
      () => false,
    ),
  );
  return {
    url: `redis://127.0.0.1:${port}`,
    client,
    stop() {
      client.disconnect();
      proc.kill('SIGKILL');
    },
  };
}

const ME = '{ me { id monthlyBudgetUsd } }';
const code = (r: GqlResponse) => r.errors?.[0]?.extensions?.code;

describe('an admin change is in effect everywhere for the next request, or rolled back (item 4)', () => {
  let redis: Awaited<ReturnType<typeof ownRedis>>;
  let a: App;
  let b: App;

  beforeAll(async () => {
    redis = await ownRedis();
    a = await startApp({ REDIS_URL: redis.url }, sim, { background: false });
    b = await startApp({ REDIS_URL: redis.url, CACHE_MAX_AGE_MS: '600' }, sim, { background: false });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    redis?.stop();
  });

  const refuseWrites = () => redis.client.config('SET', 'maxmemory', '1').then(() => redis.client.config('SET', 'maxmemory-policy', 'noeviction'));
  const acceptWrites = () => redis.client.config('SET', 'maxmemory', '0');

  it('revokeApiKey while Redis refuses writes: SERVICE_UNAVAILABLE, the key is not revoked, no audit entry, and still works on every instance', async () => {
    const t = await createTenant(a.url);
    expect(code(await gql(b.url, t.key, ME))).toBeUndefined(); // B has the key cached
    await refuseWrites();
    try {
      const r = await gql(a.url, TEST_ADMIN_KEY, 'mutation($id: ID!) { revokeApiKey(id: $id) }', { id: t.keyId });
      expect(code(r)).toBe('SERVICE_UNAVAILABLE');
      expect(r.status).toBe(503);
      expect(r.errors![0]!.message).toMatch(/Redis/);
    } finally {
      await acceptWrites();
    }
    expect((await db.apiKey.findUniqueOrThrow({ where: { id: t.keyId } })).revokedAt).toBeNull();
    expect(await db.auditEntry.count({ where: { targetId: t.keyId, action: 'revokeApiKey' } })).toBe(0);
    expect(code(await gql(b.url, t.key, ME))).toBeUndefined();

    // With Redis back, the same change commits and applies to B's very next request.
    expect((await gqlOk(a.url, TEST_ADMIN_KEY, 'mutation($id: ID!) { revokeApiKey(id: $id) }', { id: t.keyId })).revokeApiKey).toBe(true);
    expect(code(await gql(b.url, t.key, ME))).toBe('UNAUTHENTICATED');
  });

  it('setTenantBudget while Redis refuses writes: SERVICE_UNAVAILABLE and the budget is unchanged in Postgres and on every instance', async () => {
    const t = await createTenant(a.url, { monthlyBudgetUsd: '5' });
    await refuseWrites();
    try {
      const r = await gql(a.url, TEST_ADMIN_KEY, 'mutation($id: ID!) { setTenantBudget(tenantId: $id, monthlyBudgetUsd: "7") { id } }', { id: t.id });
      expect(code(r)).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await acceptWrites();
    }
    expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).monthlyBudgetMicros).toBe(5_000_000n);
    const me = await gqlOk(b.url, t.key, ME);
    expect(me.me.monthlyBudgetUsd).toBe('5.000000');
  });

  it('a change whose closing announcement is lost still reaches every instance: nothing is cached while it is pending, and the pending entry expires', async () => {
    const watcher = makeEpoch(redis.client, { maxAgeMs: 60_000 });
    const admin = makeEpoch(redis.client, { maxAgeMs: 60_000, pendingTtlMs: 400 });
    await watcher.sync();
    expect(watcher.cacheable()).toBe(true);
    await admin.begin(); // ...and never `end` (Redis lost right after the commit)
    await watcher.sync();
    expect(watcher.cacheable()).toBe(false);
    await waitFor(async () => (await watcher.sync(), watcher.cacheable()), 3_000);
  });

  it("cached key and tenant state has a hard maximum age: a change made behind the epoch's back shows within CACHE_MAX_AGE_MS", async () => {
    const t = await createTenant(a.url);
    expect(code(await gql(b.url, t.key, ME))).toBeUndefined();
    await db.apiKey.update({ where: { id: t.keyId }, data: { revokedAt: new Date() } }); // no epoch move
    const changed = Date.now();
    await waitFor(async () => code(await gql(b.url, t.key, ME)) === 'UNAUTHENTICATED', 3_000);
    expect(Date.now() - changed).toBeLessThan(600 + 1_000);
  });
});

describe('Postgres unreachable: SERVICE_UNAVAILABLE (503) everywhere (item 7)', () => {
  let proxy: Awaited<ReturnType<typeof tcpProxy>>;
  let app: App;
  let t: { id: string; key: string; keyId: string };
  let requestId: string;
  const month = new Date().toISOString().slice(0, 7);

  beforeAll(async () => {
    proxy = await tcpProxy(Number(new URL(TEST_DATABASE_URL).port || 5432));
    const dbUrl = new URL(TEST_DATABASE_URL);
    dbUrl.port = String(proxy.port);
    dbUrl.hostname = '127.0.0.1';
    app = await startApp({ DATABASE_URL: dbUrl.toString(), REDIS_URL: TEST_REDIS_URL }, sim, { background: false });
    t = await createTenant(app.url);
    requestId = (await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))).chat.requestId;
    proxy.cut();
  });
  afterAll(async () => {
    proxy?.restore();
    await app?.stop();
    await proxy?.close();
  });

  const admin: Array<[string, string, () => Record<string, unknown>]> = [
    ['requests', 'query($t: ID) { requests(tenantId: $t) { requestId } }', () => ({ t: t.id })],
    ['request', 'query($id: ID!) { request(id: $id) { requestId } }', () => ({ id: requestId })],
    ['costReport', 'query($t: ID, $m: String!) { costReport(month: $m, groupBy: MODEL, tenantId: $t) { totalUsd } }', () => ({ t: t.id, m: month })],
    ['apiKeys', 'query($t: ID) { apiKeys(tenantId: $t) { id } }', () => ({ t: t.id })],
    ['tenants', '{ tenants { id } }', () => ({})],
    ['auditLog', '{ auditLog { id } }', () => ({})],
    ['createTenant', 'mutation($n: String!) { createTenant(input: { name: $n }) { tenant { id } } }', () => ({ n: uniqueName() })],
    ['setTenantBudget', 'mutation($t: ID!) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: "3") { id } }', () => ({ t: t.id })],
    ['setTenantLimits', 'mutation($t: ID!) { setTenantLimits(tenantId: $t, requestsPerMinute: 3) { id } }', () => ({ t: t.id })],
    ['setProfileOverride', 'mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "qwen3-8b") { model } }', () => ({ t: t.id })],
    ['removeProfileOverride', 'mutation($t: ID!) { removeProfileOverride(tenantId: $t, profile: "chat_default") }', () => ({ t: t.id })],
    ['createApiKey', 'mutation($t: ID!) { createApiKey(tenantId: $t) { id } }', () => ({ t: t.id })],
    ['revokeApiKey', 'mutation($id: ID!) { revokeApiKey(id: $id) }', () => ({ id: t.keyId })],
    ['setModelPrice', 'mutation { setModelPrice(model: "qwen3-8b", outputUsdPerMillion: "0.4") { id } }', () => ({})],
  ];
  it.each(admin)('admin %s', async (_name, query, vars) => {
    const r = await gql(app.url, TEST_ADMIN_KEY, query, vars());
    expect(code(r)).toBe('SERVICE_UNAVAILABLE');
    expect(r.status).toBe(503);
    expect(r.errors![0]!.message).toMatch(/Postgres/);
    expect(JSON.stringify(r)).not.toMatch(/prisma|ECONN|terminated|SELECT/i);
  });

  const tenant: Array<[string, string, () => Record<string, unknown>]> = [
    ['requests', '{ requests { requestId } }', () => ({})],
    ['request', 'query($id: ID!) { request(id: $id) { requestId } }', () => ({ id: requestId })],
    ['costReport', 'query($m: String!) { costReport(month: $m, groupBy: DAY) { totalUsd } }', () => ({ m: month })],
    ['apiKeys', '{ apiKeys { id } }', () => ({})],
    ['chat', CHAT, () => hello('fast_classify', { maxTokens: 5 })],
  ];
  it.each(tenant)('tenant %s', async (_name, query, vars) => {
    const r = await gql(app.url, t.key, query, vars());
    expect(code(r)).toBe('SERVICE_UNAVAILABLE');
    expect(r.status).toBe(503);
  });
});

describe('unknown keys and failing addresses never reach Postgres (item 11, auth)', () => {
  let proxy: Awaited<ReturnType<typeof tcpProxy>>;
  let app: App;
  let redis: Redis;
  let t: { id: string; key: string; keyId: string };
  // A Redis database of its own: every other test file also fails authentications from 127.0.0.1.
  const redisUrl = TEST_REDIS_URL.replace(/\/\d+$/, '/13');
  const LIMIT = 6;
  const bogus = () => `lgw_${uniqueName('guess').replace(/[^a-z0-9]/gi, '')}`;

  beforeAll(async () => {
    redis = new Redis(redisUrl);
    await redis.flushdb();
    proxy = await tcpProxy(Number(new URL(TEST_DATABASE_URL).port || 5432));
    const dbUrl = new URL(TEST_DATABASE_URL);
    dbUrl.port = String(proxy.port);
    dbUrl.hostname = '127.0.0.1';
    app = await startApp({ DATABASE_URL: dbUrl.toString(), REDIS_URL: redisUrl, AUTH_FAILURES_PER_MINUTE: String(LIMIT), CACHE_MAX_AGE_MS: '60000' }, sim, {
      background: false,
    });
    t = await createTenant(app.url);
  });
  afterEach(() => proxy.restore());
  afterAll(async () => {
    await app?.stop();
    await proxy?.close();
    redis?.disconnect();
  });

  it('a repeated unknown key is answered from the negative cache (401 with Postgres cut); a new one needs Postgres', async () => {
    await redis.flushdb();
    const guess = bogus();
    expect(code(await gql(app.url, guess, ME))).toBe('UNAUTHENTICATED');
    proxy.cut();
    const again = await gql(app.url, guess, ME);
    expect(code(again)).toBe('UNAUTHENTICATED');
    expect(again.status).toBe(401);
    expect(code(await gql(app.url, bogus(), ME))).toBe('SERVICE_UNAVAILABLE');
  });

  it('creating a key moves the epoch and clears the negative cache on every instance', async () => {
    await redis.flushdb();
    const guess = bogus();
    expect(code(await gql(app.url, guess, ME))).toBe('UNAUTHENTICATED');
    await gqlOk(app.url, TEST_ADMIN_KEY, 'mutation($t: ID!) { createApiKey(tenantId: $t) { id } }', { t: t.id });
    proxy.cut();
    // Forgotten: the lookup needs Postgres again (which is cut), so the answer is 503, not the cached 401.
    expect(code(await gql(app.url, guess, ME))).toBe('SERVICE_UNAVAILABLE');
  });

  it('an address past AUTH_FAILURES_PER_MINUTE is RATE_LIMITED (429) before any lookup; a known key from it still works', async () => {
    await redis.flushdb();
    expect(code(await gql(app.url, t.key, ME))).toBeUndefined(); // cached before the flood
    for (let i = 0; i < LIMIT; i++) expect(code(await gql(app.url, bogus(), ME))).toBe('UNAUTHENTICATED');
    proxy.cut();
    const r = await gql(app.url, bogus(), ME);
    expect(code(r)).toBe('RATE_LIMITED');
    expect(r.status).toBe(429);
    expect(r.errors![0]!.extensions).toMatchObject({ limit: 'AUTH_FAILURES' });
    const retry = r.errors![0]!.extensions!.retryAfterMs as number;
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60_000);
    expect(code(await gql(app.url, t.key, ME))).toBeUndefined();
    expect(code(await gql(app.url, TEST_ADMIN_KEY, '{ __typename }'))).toBeUndefined();
  });
});
