import net from 'node:net';
import { Client } from 'pg';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, TEST_ADMIN_KEY } from '../support/app';
import { addSimFault, simAdmin as simAdminOf, twoInstanceSuite } from '../support/suite';
import { until as waitUntil } from '../support/wait';

/**
 * The admission gate on two app instances over real Postgres, Redis and the simulator: a refusal changes nothing
 * and costs Redis only, a reseed racing an admission never leaves a request unheld, requests in flight are capped,
 * and usage above a reservation counts against what comes after.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
let a: App;
let b: App;
const simAdmin = () => simAdminOf(sim);

const fault = (body: Record<string, unknown>) => addSimFault(sim, body);
const simStats = async () => (await (await fetch(`${simAdmin()}/__sim/stats`)).json()) as { openStreams: number };

async function rows(tenantId: string) {
  return db.ledgerEntry.findMany({
    where: { tenantId },
    select: { requestId: true, state: true, promptTokens: true, completionTokens: true, costMicros: true, holdMicros: true },
  });
}

async function gateState(tenantId: string) {
  const s = await limiter.budgetState(tenantId, monthOf(new Date()));
  if (!s) throw new Error('no budget state in Redis');
  return s;
}

/** Polls `check` until it holds (a condition, not a fixed sleep); fails after `ms`. */
const until = (what: string, check: () => Promise<boolean>, ms = 10_000) => waitUntil(check, what, ms, 10);

const setLimits = (tenantId: string, rpm: number | null, tpm: number | null) =>
  gqlOk(a.url, TEST_ADMIN_KEY, `mutation($t: ID!, $r: Int, $k: Int) { setTenantLimits(tenantId: $t, requestsPerMinute: $r, tokensPerMinute: $k) { id } }`, {
    t: tenantId,
    r: rpm,
    k: tpm,
  });

const instances = twoInstanceSuite({ IDLE_TIMEOUT_MS: '2000' });
beforeAll(async () => void ({ sim, a, b } = await instances.start()));
afterAll(async () => {
  await db.$disconnect();
  redis.disconnect();
});

test('a refusal gives nothing back: TPM 400, 20 sequential chats of maxTokens 150 on two instances admit only what fits', async () => {
  const t = await createTenant(a.url, { tokensPerMinute: 400 });
  const results = [];
  for (let i = 0; i < 20; i++) results.push(await gql((i % 2 ? a : b).url, t.key, CHAT, hello('chat_default', { maxTokens: 150 })));
  const ok = results.filter((r) => !r.errors);
  const refused = results.filter((r) => r.errors);
  for (const r of refused) expect(r.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE' });
  const ledger = await rows(t.id);
  expect(ledger).toHaveLength(ok.length); // a refused request leaves no row
  const used = ledger.reduce((n, r) => n + r.promptTokens + (r.completionTokens ?? 0), 0);
  expect(used).toBeLessThanOrEqual(400);
  // Each admission reserved prompt + 150 (> 150): at most two fit in 400; before the fix refusals refilled it (11).
  expect(ok.length).toBe(2);
});

test('refusals never touch Postgres: with Postgres unreachable, a rate-limited or over-budget flood is still answered by Redis alone', async () => {
  const proxy = await tcpProxy(new URL(TEST_DATABASE_URL));
  const u = new URL(TEST_DATABASE_URL);
  u.host = `127.0.0.1:${proxy.port}`;
  const c = await startApp({ DATABASE_URL: u.toString(), IDLE_TIMEOUT_MS: '2000' }, sim, { background: false });
  try {
    const limited = await createTenant(a.url, { requestsPerMinute: 1 });
    const broke = await createTenant(a.url, { monthlyBudgetUsd: '0.000001' });
    // Warm the instance's caches (keys, tenants, catalog) and use the one request of the minute.
    expect((await gql(c.url, limited.key, CHAT, hello())).errors).toBeUndefined();
    expect((await gql(c.url, broke.key, CHAT, hello())).errors?.[0]?.extensions?.code).toBe('BUDGET_EXCEEDED');
    // The warm-up's gate confirmation is written to Postgres in a batch shortly after its answer: let it land first.
    await until(
      'the warm-up settlement confirmed',
      async () => (await db.ledgerEntry.count({ where: { tenantId: limited.id, gatePendingSince: { not: null } } })) === 0,
    );

    proxy.cut();
    const flood = await Promise.all(Array.from({ length: 20 }, (_, i) => gql(c.url, i % 2 ? limited.key : broke.key, CHAT, hello())));
    for (const [i, r] of flood.entries()) {
      expect(r.errors?.[0]?.extensions?.code).toBe(i % 2 ? 'RATE_LIMITED' : 'BUDGET_EXCEEDED');
    }
    expect(proxy.attempts()).toBe(0); // not one connection to Postgres was even tried
  } finally {
    await c.stop();
    await proxy.close();
  }
  // Admissions that pass still need Postgres: nothing reaches the upstream without its HELD row.
});

test('a reseed between the reservation and the write-ahead INSERT is caught: the request is held again before the upstream call', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '100' });
  const month = monthOf(new Date());
  await gqlOk(b.url, t.key, `{ me { id } }`); // seeds the month
  await fault({ model: '*', fault: 'stall', afterTokens: 2, delayMs: 1_500 });

  // Block INSERTs into the ledger, so the admission stops between its reservation and its row.
  const locker = new Client({ connectionString: TEST_DATABASE_URL });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE usage_ledger IN SHARE MODE');
  const chat = gql(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 150 }));
  try {
    await until('the INSERT to wait on the lock', async () => {
      const r = await db.$queryRaw<
        { n: bigint }[]
      >`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO usage_ledger%'`;
      return Number(r[0]!.n) === 1;
    });
    const before = await gateState(t.id);
    expect(before.heldMicros).toBeGreaterThan(0n); // reserved in Redis, no row yet
    // Redis loses the month; another instance reseeds it from Postgres, which has no row for the request yet.
    await redis.del(`lg:{${t.id}}:v2:budget:${month}`, `lg:{${t.id}}:v2:holds:${month}`, `lg:{${t.id}}:v2:hold-amounts:${month}`);
    await gqlOk(b.url, t.key, `{ me { id } }`);
    expect(await gateState(t.id)).toEqual({ spentMicros: 0n, heldMicros: 0n });
  } finally {
    await locker.query('COMMIT');
    await locker.end();
  }
  await until('the upstream call', async () => (await simStats()).openStreams === 1);
  const [row] = await rows(t.id);
  expect(row).toMatchObject({ state: 'HELD' });
  expect(await gateState(t.id)).toEqual({ spentMicros: 0n, heldMicros: row!.holdMicros }); // held again before the call
  await chat;
  const settled = await rows(t.id);
  expect(settled).toHaveLength(1);
  expect(await gateState(t.id)).toEqual({ spentMicros: settled[0]!.costMicros ?? 0n, heldMicros: 0n });
});

test('maxConcurrentRequests: set by the admin, held across instances, excess is RATE_LIMITED CONCURRENT_REQUESTS with retryAfterMs 1000', async () => {
  const t = await createTenant(a.url);
  const set = `mutation($t: ID!, $m: Int) { setTenantConcurrency(tenantId: $t, maxConcurrentRequests: $m) { maxConcurrentRequests } }`;
  // Wrong values: each refused with its code, and nothing written (no cap, no audit record).
  const zero = await gql(a.url, TEST_ADMIN_KEY, set, { t: t.id, m: 0 });
  expect(zero.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'maxConcurrentRequests' });
  expect(zero.errors?.[0]?.message).toMatch(/at least 1/);
  expect((await gql(a.url, TEST_ADMIN_KEY, set, { t: t.id, m: -3 })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  expect((await gql(a.url, TEST_ADMIN_KEY, set, { t: '00000000-0000-4000-8000-000000000000', m: 2 })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  expect((await gql(a.url, TEST_ADMIN_KEY, set, { t: 'not-a-uuid', m: 2 })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  expect((await gql(a.url, t.key, set, { t: t.id, m: 2 })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  expect(await db.tenant.findUniqueOrThrow({ where: { id: t.id }, select: { maxConcurrentRequests: true } })).toEqual({ maxConcurrentRequests: null });
  expect(await db.auditEntry.count({ where: { action: 'setTenantConcurrency', targetId: t.id } })).toBe(0);
  expect(await gqlOk(a.url, TEST_ADMIN_KEY, set, { t: t.id, m: 2 })).toEqual({ setTenantConcurrency: { maxConcurrentRequests: 2 } });

  await fault({ model: '*', fault: 'stall', afterTokens: 2, delayMs: 1_000, times: 2 });
  const running = [gql(a.url, t.key, CHAT, hello()), gql(b.url, t.key, CHAT, hello())];
  await until('two requests in flight', async () => (await simStats()).openStreams === 2);
  const third = await gql(b.url, t.key, CHAT, hello());
  expect(third.status).toBe(429);
  expect(third.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'CONCURRENT_REQUESTS', retryAfterMs: 1000 });
  await Promise.all(running);
  expect((await gql(a.url, t.key, CHAT, hello())).errors).toBeUndefined(); // settled requests gave their slots back
  expect(await gqlOk(a.url, TEST_ADMIN_KEY, set, { t: t.id, m: null })).toEqual({ setTenantConcurrency: { maxConcurrentRequests: null } });
});

test('over_usage: usage above the reservation is charged and counts against later admissions (tokens and budget)', async () => {
  const t = await createTenant(a.url, { tokensPerMinute: 800 });
  await fault({ model: '*', fault: 'over_usage', factor: 5, times: 1 });
  const first = await gql(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 150 }));
  expect(first.errors).toBeUndefined();
  const usage = (first.data as any).chat.usage;
  expect(usage.completionTokens).toBe(750);
  // ~170 tokens were reserved, 810 reported (5 x (12 + 150)): the window is over its 800 even for a small request.
  const next = await gql(b.url, t.key, CHAT, hello('chat_default', { maxTokens: 10 }));
  expect(next.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE' });

  // Budget: spent above the budget (a reservation the provider overran) admits nothing more, not even a cheap one.
  const [row] = await rows(t.id);
  await setLimits(t.id, null, null);
  await gqlOk(a.url, TEST_ADMIN_KEY, `mutation($t: ID!, $b: Usd) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: $b) { id } }`, {
    t: t.id,
    b: (Number(row!.costMicros) / 1e6).toFixed(6),
  });
  const broke = await gql(b.url, t.key, CHAT, hello('chat_default', { maxTokens: 1 }));
  expect(broke.errors?.[0]?.extensions).toMatchObject({ code: 'BUDGET_EXCEEDED', remainingUsd: '0.000000' });
  expect(await gateState(t.id)).toEqual({ spentMicros: row!.costMicros, heldMicros: 0n });
});

test('idempotency keys: a replay is served without admission and counts nothing; a keyed refusal leaves no key and no row', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 2 });
  const keyed = (k: string) => hello('chat_default', { maxTokens: 20, idempotencyKey: k });
  const first = await gql(a.url, t.key, CHAT, keyed('k1'));
  expect(first.errors).toBeUndefined();
  for (const app of [a, b, a]) {
    const replay = await gql(app.url, t.key, CHAT, keyed('k1'));
    expect((replay.data as any)?.chat?.requestId).toBe((first.data as any).chat.requestId);
  }
  expect((await gql(b.url, t.key, CHAT, keyed('k2'))).errors).toBeUndefined(); // the replays took nothing of the 2
  const refused = await gql(a.url, t.key, CHAT, keyed('k3'));
  expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'REQUESTS_PER_MINUTE' });
  expect((await gql(b.url, t.key, CHAT, keyed('k1'))).errors).toBeUndefined(); // still replayed at the limit
  expect(await rows(t.id)).toHaveLength(2);
  expect((await db.idempotencyKey.findMany({ where: { tenantId: t.id }, select: { key: true } })).map((k) => k.key).sort()).toEqual(['k1', 'k2']);
});

/** A TCP proxy in front of Postgres for one app instance; cut() drops every connection and refuses new ones. */
async function tcpProxy(target: URL): Promise<{ port: number; cut(): void; attempts(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let open = true;
  let attemptsAfterCut = 0;
  const server = net.createServer((client) => {
    if (!open) {
      attemptsAfterCut++;
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    attempts: () => attemptsAfterCut,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
