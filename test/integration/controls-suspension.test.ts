import Redis from 'ioredis';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT_STREAM, TEST_ADMIN_KEY, createTenant, gql, gqlOk, hello, startApp, startSim, subscribeAll, wsClient } from '../support/app';
import { collect, makeStreamClient, type StreamClient } from '../support/stream-clients';
import { until } from '../support/wait';
import { refuseRedisWrites, startTcpProxy } from '../support/faults';

/** Issue 16: suspendTenant / resumeTenant on two instances, mid-stream, on every transport. */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
let a: App;
let b: App;
const closers: Array<() => unknown> = [];

const CHAT_OUTCOME = `mutation($input: ChatInput!) { chat(input: $input) { requestId model content outcome usage { completionTokens costUsd } } }`;
const SUSPEND = `mutation($id: ID!, $reason: String) { suspendTenant(tenantId: $id, reason: $reason) { id suspendedAt suspensionReason } }`;
const RESUME = `mutation($id: ID!) { resumeTenant(tenantId: $id) { id suspendedAt suspensionReason } }`;
const TENANT = `query($id: ID!) { tenant(id: $id) { suspendedAt suspensionReason } }`;
const simAdmin = () => new URL(sim.url).origin;
const v1 = (app: App) => app.url.replace(/\/graphql$/, '/v1');

beforeAll(async () => {
  sim = await startSim(1); // real pace: requests are still running when the suspension comes
  const env = { CHECKPOINT_INTERVAL_MS: '300', FIRST_TOKEN_FLOOR_MS: '20000' };
  [a, b] = await Promise.all([startApp(env, sim), startApp(env, sim)]);
});
afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await fetch(`${simAdmin()}/__sim/faults`, { method: 'DELETE' });
  await Promise.all([a?.stop(), b?.stop()]);
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

/** A graphql-ws client that keeps its connection open between operations (the test's default closes it when idle). */
function eagerWs(url: string, key: string): Client {
  const c = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
    lazy: false,
  });
  closers.push(() => c.dispose());
  return c;
}

function streamClient(name: 'graphql-sse' | 'apollo-http', url: string, key: string): StreamClient {
  const c = makeStreamClient(name, url, key);
  closers.push(() => c.dispose());
  return c;
}

type Ended = { events: any[]; error: any; at: number };
function stream(client: Client, variables: Record<string, unknown>, onEvent?: (n: number) => void): Promise<Ended> {
  return new Promise((resolve) => {
    const events: any[] = [];
    client.subscribe(
      { query: CHAT_STREAM, variables },
      {
        next: (v) => {
          if (v.errors) return resolve({ events, error: v.errors, at: Date.now() });
          events.push((v.data as any).chatStream);
          onEvent?.(events.length);
        },
        error: (error) => resolve({ events, error, at: Date.now() }),
        complete: () => resolve({ events, error: null, at: Date.now() }),
      },
    );
  });
}

const v1Chat = (app: App, key: string, extra: Record<string, unknown> = {}) =>
  fetch(`${v1(app)}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'chat_default', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], ...extra }),
  });

const suspendedCode = (errors: any) => {
  const e = Array.isArray(errors) ? errors[0] : errors;
  return { code: e?.extensions?.code, reason: e?.extensions?.reason };
};

test('suspendTenant on A ends the running requests on B with SUSPENDED within a bound, settled; every transport then refuses the tenant on both instances without admitting or writing; resumeTenant lets it through', async () => {
  // rpm 5: the three requests before the suspension and the two after the resume fit; one refused request that
  // was admitted anyway would make the last ones RATE_LIMITED.
  const t = await createTenant(a.url, { monthlyBudgetUsd: '10', requestsPerMinute: 5 });
  // deep_reasoning answers nothing for 20 s: it is still waiting for its first token when the suspension comes.
  await fetch(`${simAdmin()}/__sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'minimax-m2.5', fault: 'timeout', delayMs: 20_000, times: 1 }),
  });
  const ws = eagerWs(b.url, t.key);
  let started!: () => void;
  const going = new Promise<void>((r) => (started = r));
  const long = stream(ws, hello('long_form', { maxTokens: 400 }), (n) => n === 3 && started());
  const silent = stream(ws, hello('deep_reasoning', { maxTokens: 50 }));
  const mutation = gql(b.url, t.key, CHAT_OUTCOME, hello('long_form', { maxTokens: 400 }));
  await going;
  await until(
    async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, profile: 'long_form', checkpointTokens: { gt: 0 } } })) === 2,
    'both long requests to deliver tokens',
  );
  await until(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id } })) === 3, 'the silent request to be written ahead');

  const s = await gqlOk(a.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id, reason: 'unpaid invoice' });
  const suspendedAt = Date.now();
  expect(s.suspendTenant).toMatchObject({ id: t.id, suspensionReason: 'unpaid invoice' });
  expect(s.suspendTenant.suspendedAt).not.toBeNull();

  const [l, n, m] = await Promise.all([long, silent, mutation]);
  // Ended by B's checkpointer (every 300 ms), far sooner than the 30 s lease.
  expect(l.error).toBeNull();
  const done = l.events.at(-1);
  expect(done).toMatchObject({ done: true, outcome: 'SUSPENDED' });
  expect(done.usage.completionTokens).toBeGreaterThan(0);
  expect(done.usage.completionTokens).toBeLessThan(400);
  expect(l.at - suspendedAt).toBeLessThan(2_500);
  // Before any content: the suspension's error, nothing charged.
  expect(n.events).toEqual([]);
  expect(suspendedCode(n.error)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
  // The mutation returns what it produced, like SHUTDOWN and TIMEOUT do.
  expect(m.errors).toBeUndefined();
  expect(m.data!.chat).toMatchObject({ outcome: 'SUSPENDED' });
  expect(m.data!.chat.content.length).toBeGreaterThan(0);
  expect(m.data!.chat.usage.completionTokens).toBeGreaterThan(0);

  // One settled row each, charged for what was consumed; the gate agrees.
  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
  expect(rows).toHaveLength(3);
  expect(rows.every((r) => r.state === 'SETTLED' && r.outcome === 'SUSPENDED')).toBe(true);
  expect(rows.find((r) => r.requestId === done.requestId)!.completionTokens).toBe(done.usage.completionTokens);
  expect(rows.find((r) => r.profile === 'deep_reasoning')!.costMicros).toBe(0n);
  const sum = rows.reduce((x, r) => x + r.costMicros, 0n);
  await until(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, gatePendingSince: { not: null } } })) === 0, 'settlements to reach the gate');
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: sum, heldMicros: 0n });

  // The next request on either instance, on every transport, is FORBIDDEN with reason SUSPENDED.
  for (const app of [a, b]) {
    const r = await gql(app.url, t.key, CHAT_OUTCOME, hello('chat_default', { maxTokens: 10 }));
    expect(r.status).toBe(403);
    expect(suspendedCode(r.errors)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
    expect(r.errors![0]!.message).toMatch(/suspended \(unpaid invoice\)/);
    const me = await gql(app.url, t.key, `{ me { id } }`);
    expect(suspendedCode(me.errors)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
    const openai = await v1Chat(app, t.key);
    expect(openai.status).toBe(403);
    expect(((await openai.json()) as any).error).toMatchObject({ type: 'permission_error', code: 'tenant_suspended' });
    const openaiStream = await v1Chat(app, t.key, { stream: true });
    expect(openaiStream.status).toBe(403);
    await openaiStream.body?.cancel();
  }
  // graphql-ws: an operation on the open connection, and a new connection.
  const onOpen = await stream(ws, hello('chat_default', { maxTokens: 10 }));
  expect(suspendedCode(onOpen.error)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
  const fresh = wsClient(a.url, t.key);
  closers.push(() => fresh.dispose());
  const closed = await subscribeAll(fresh, CHAT_STREAM, hello('chat_default', { maxTokens: 10 }));
  expect(closed.error).toMatchObject({ code: 4401 });
  expect(closed.error.reason).toMatch(/^FORBIDDEN: SUSPENDED/);
  // SSE (graphql-sse) and multipart (Apollo's HttpLink).
  for (const [name, app] of [
    ['graphql-sse', a],
    ['apollo-http', b],
  ] as const) {
    const r = await collect(streamClient(name, app.url, t.key), CHAT_STREAM, hello('chat_default', { maxTokens: 10 }));
    expect(r.events).toEqual([]);
    expect(suspendedCode(r.errors)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
  }
  // Nothing written, nothing admitted.
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(3);
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: sum, heldMicros: 0n });
  // The admin still reads the tenant, on either instance.
  expect((await gqlOk(b.url, TEST_ADMIN_KEY, TENANT, { id: t.id })).tenant).toMatchObject({ suspensionReason: 'unpaid invoice' });

  const resumed = await gqlOk(b.url, TEST_ADMIN_KEY, RESUME, { id: t.id });
  expect(resumed.resumeTenant).toEqual({ id: t.id, suspendedAt: null, suspensionReason: null });
  const again = await gql(a.url, t.key, CHAT_OUTCOME, hello('chat_default', { maxTokens: 10 }));
  expect(again.errors).toBeUndefined();
  expect(again.data!.chat.outcome).toBe('COMPLETED');
  const streamed = await stream(ws, hello('chat_default', { maxTokens: 10 }));
  expect(streamed.error).toBeNull();
  expect(streamed.events.at(-1)).toMatchObject({ done: true, outcome: 'COMPLETED' });

  const audit = await db.auditEntry.findMany({ where: { tenantId: t.id, action: { in: ['suspendTenant', 'resumeTenant'] } }, orderBy: { id: 'asc' } });
  expect(audit.map((e) => e.action)).toEqual(['suspendTenant', 'resumeTenant']);
  expect(audit[0]!.newValue).toMatchObject({ reason: 'unpaid invoice' });
}, 60_000);

test('suspending a suspended tenant and resuming an active one change nothing', async () => {
  const t = await createTenant(a.url);
  const first = (await gqlOk(a.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id, reason: 'first' })).suspendTenant;
  const second = (await gqlOk(b.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id, reason: 'second' })).suspendTenant;
  expect(second).toEqual(first);
  await gqlOk(a.url, TEST_ADMIN_KEY, RESUME, { id: t.id });
  expect((await gqlOk(b.url, TEST_ADMIN_KEY, RESUME, { id: t.id })).resumeTenant.suspendedAt).toBeNull();
  const actions = (await db.auditEntry.findMany({ where: { tenantId: t.id }, orderBy: { id: 'asc' } })).map((e) => e.action);
  expect(actions).toEqual(['createTenant', 'createApiKey', 'suspendTenant', 'resumeTenant']);
});

test('wrong values: unknown or malformed tenant, a reason too long or on several lines, a tenant key; nothing is written', async () => {
  const t = await createTenant(a.url);
  const auditBefore = await db.auditEntry.count();
  const cases: Array<[string, string | null, string, Record<string, unknown>, string]> = [
    [SUSPEND, TEST_ADMIN_KEY, 'NOT_FOUND', { id: '00000000-0000-4000-8000-000000000000' }, 'no tenant'],
    [SUSPEND, TEST_ADMIN_KEY, 'NOT_FOUND', { id: 'not-a-uuid' }, 'no tenant'],
    [RESUME, TEST_ADMIN_KEY, 'NOT_FOUND', { id: 'not-a-uuid' }, 'no tenant'],
    [SUSPEND, TEST_ADMIN_KEY, 'BAD_USER_INPUT', { id: t.id, reason: 'x'.repeat(501) }, 'reason: at most 500 characters'],
    [SUSPEND, TEST_ADMIN_KEY, 'BAD_USER_INPUT', { id: t.id, reason: 'late\npayment' }, 'reason: control characters'],
    [SUSPEND, t.key, 'FORBIDDEN', { id: t.id }, 'needs the admin key'],
    [RESUME, t.key, 'FORBIDDEN', { id: t.id }, 'needs the admin key'],
  ];
  for (const [query, key, code, variables, message] of cases) {
    const r = await gql(b.url, key, query, variables);
    expect(r.errors?.[0]?.extensions?.code).toBe(code);
    expect(r.errors?.[0]?.message).toContain(message);
  }
  const row = await db.tenant.findUniqueOrThrow({ where: { id: t.id } });
  expect(row.suspendedAt).toBeNull();
  expect(await db.auditEntry.count()).toBe(auditBefore);
  // A blank reason is no reason.
  expect((await gqlOk(a.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id, reason: '   ' })).suspendTenant.suspensionReason).toBeNull();
});

test('a suspension Redis cannot announce is rolled back: SERVICE_UNAVAILABLE, the tenant keeps working on both instances', async () => {
  const t = await createTenant(a.url);
  const restore = await refuseRedisWrites(redis);
  let r;
  try {
    r = await gql(a.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id, reason: 'never announced' });
  } finally {
    await restore();
  }
  expect(r.status).toBe(503);
  expect(r.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
  expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).suspendedAt).toBeNull();
  expect(await db.auditEntry.count({ where: { tenantId: t.id, action: 'suspendTenant' } })).toBe(0);
  for (const app of [a, b]) expect((await gql(app.url, t.key, CHAT_OUTCOME, hello('chat_default', { maxTokens: 10 }))).errors).toBeUndefined();
});

test('a warm instance refuses a suspended tenant with Postgres unreachable and Redis refusing writes: the refusal reads no statement and admits nothing', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '10' });
  const pg = new URL(TEST_DATABASE_URL);
  const proxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  const c = await startApp({ DATABASE_URL: proxy.url(TEST_DATABASE_URL), CACHE_MAX_AGE_MS: '60000' }, sim, { background: false });
  let restoreRedis: (() => Promise<void>) | null = null;
  try {
    await gqlOk(a.url, TEST_ADMIN_KEY, SUSPEND, { id: t.id });
    // The first refusal on C loads the key and the tenant; every later one is answered from C's cache.
    expect(suspendedCode((await gql(c.url, t.key, `{ me { id } }`)).errors)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
    proxy.refuse(true);
    proxy.cut();
    restoreRedis = await refuseRedisWrites(redis);
    const chat = await gql(c.url, t.key, CHAT_OUTCOME, hello('chat_default', { maxTokens: 10 }));
    expect(chat.status).toBe(403);
    expect(suspendedCode(chat.errors)).toEqual({ code: 'FORBIDDEN', reason: 'SUSPENDED' });
    expect((await v1Chat(c, t.key)).status).toBe(403);
    const ws = wsClient(c.url, t.key);
    closers.push(() => ws.dispose());
    const streamed = await subscribeAll(ws, CHAT_STREAM, hello('chat_default', { maxTokens: 10 }));
    expect(streamed.error).toMatchObject({ code: 4401 });
  } finally {
    await restoreRedis?.();
    proxy.refuse(false);
    await c.stop();
    await proxy.close();
  }
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: 0n, heldMicros: 0n });
});
