import Redis from 'ioredis';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { createLogger } from '../../src/infra/logger';
import { makeIdempotency, type StoredOutcome } from '../../src/chat/idempotency';
import { makeKeySignals, type KeySignals } from '../../src/chat/key-signals';
import { AppError } from '../../src/errors';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY, uniqueName } from '../support/app';
import { until as waitUntil } from '../support/wait';

/**
 * Issue 11 item 5 (a replay says how the first request ended) and the idempotency waiters of items 12/13 (woken by
 * one pub/sub subscription per process instead of polling Postgres, capped per process).
 */

let sim: Simulator;
let app: App;
let quick: App; // TOTAL_TIMEOUT_MS 1500: a stalled answer ends TIMEOUT
let db: Db;
const simOrigin = () => new URL(sim.url).origin;

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({ CHECKPOINT_INTERVAL_MS: '50' }, sim);
  quick = await startApp({ TOTAL_TIMEOUT_MS: '1500' }, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
});

afterAll(async () => {
  await app?.stop();
  await quick?.stop();
  await sim?.close();
  await db?.$disconnect();
});

const waitFor = (cond: () => Promise<boolean> | boolean, timeoutMs = 10_000) => waitUntil(cond, 'the condition', timeoutMs, 10);

const fault = async (spec: Record<string, unknown>) => {
  const r = await fetch(`${simOrigin()}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(r.status).toBe(201);
};
const simRequests = async (model: string): Promise<number> =>
  ((await (await fetch(`${simOrigin()}/__sim/stats`)).json()) as { requests: Record<string, number> }).requests[model] ?? 0;
const override = (tenantId: string, model: string) =>
  gqlOk(
    app.url,
    TEST_ADMIN_KEY,
    'mutation($t: ID!, $m: String!) { setProfileOverride(tenantId: $t, profile: "chat_speed", model: $m, fallbacks: []) { model } }',
    { t: tenantId, m: model },
  );

const CHAT_OUTCOME = 'mutation($input: ChatInput!) { chat(input: $input) { requestId content outcome usage { completionTokens costUsd } } }';

describe('ChatResult.outcome: a cut-off answer is never replayed as a success (item 5)', () => {
  it('a first chat whose client went away mid-answer is stored CLIENT_CANCELLED; its retry returns the partial content with that outcome, no new upstream call', async () => {
    const t = await createTenant(app.url);
    await override(t.id, 'step-3.5-flash');
    await fault({ model: 'step-3.5-flash', fault: 'stall', afterTokens: 3, delayMs: 5000, times: 1 });
    const input = hello('chat_speed', { maxTokens: 40, idempotencyKey: 'went-away' });
    const ac = new AbortController();
    const pending = fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: CHAT, variables: input }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    // The checkpoint shows the three tokens delivered; the upstream is stalling.
    await waitFor(async () => ((await db.ledgerEntry.findFirst({ where: { tenantId: t.id } }))?.checkpointTokens ?? 0) >= 3);
    ac.abort();
    expect(String(await pending)).toMatch(/abort/i);
    await waitFor(async () => (await db.idempotencyKey.findFirst({ where: { tenantId: t.id, key: 'went-away' } }))?.state === 'DONE');
    const row = await db.ledgerEntry.findFirstOrThrow({ where: { tenantId: t.id } });
    expect(row.outcome).toBe('CLIENT_CANCELLED');

    const calls = await simRequests('step-3.5-flash');
    const replay = (await gqlOk(app.url, t.key, CHAT_OUTCOME, input)).chat;
    expect(replay).toMatchObject({ requestId: row.requestId, outcome: 'CLIENT_CANCELLED', usage: { completionTokens: 3 } });
    expect(replay.content.length).toBeGreaterThan(0);
    expect(await simRequests('step-3.5-flash')).toBe(calls);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });

  it('a mutation that hits the total deadline after content returns the partial answer with outcome TIMEOUT, and so does its replay', async () => {
    const t = await createTenant(quick.url);
    await override(t.id, 'qwen3-8b');
    await fault({ model: 'qwen3-8b', fault: 'stall', afterTokens: 4, delayMs: 5000, times: 1 });
    const input = hello('chat_speed', { maxTokens: 40, idempotencyKey: 'slow' });
    const first = await gql(quick.url, t.key, CHAT_OUTCOME, input);
    expect(first.errors).toBeUndefined();
    expect(first.data!.chat).toMatchObject({ outcome: 'TIMEOUT', usage: { completionTokens: 4 } });
    expect(first.data!.chat.content.length).toBeGreaterThan(0);
    const row = await db.ledgerEntry.findFirstOrThrow({ where: { tenantId: t.id } });
    expect(row.outcome).toBe('TIMEOUT');
    expect(row.costMicros).toBe(BigInt(first.data!.chat.usage.costUsd.replace('.', '')));
    const replay = await gqlOk(quick.url, t.key, CHAT_OUTCOME, input);
    expect(replay.chat).toEqual(first.data!.chat);
  });

  it('a chain that fails after charged content throws UPSTREAM_UNAVAILABLE (the part is not an answer: the gateway was replacing it), and its replay throws the same', async () => {
    const t = await createTenant(app.url);
    await override(t.id, 'deepseek-v4-flash');
    await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 5, times: 1 });
    const input = hello('chat_speed', { maxTokens: 40, idempotencyKey: 'cut' });
    const first = await gql(app.url, t.key, CHAT_OUTCOME, input);
    expect(first.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    const row = await db.ledgerEntry.findFirstOrThrow({ where: { tenantId: t.id } });
    expect(row.outcome).toBe('FAILED');
    expect(row.costMicros).toBeGreaterThan(0n);
    const replay = await gql(app.url, t.key, CHAT_OUTCOME, input);
    expect(replay.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });

  it("a result stored by the previous release (no outcome) replays with its ledger row's outcome", async () => {
    const t = await createTenant(app.url);
    const input = hello('fast_classify', { maxTokens: 5, idempotencyKey: 'old-release' });
    const first = (await gqlOk(app.url, t.key, CHAT_OUTCOME, input)).chat;
    const key = await db.idempotencyKey.findFirstOrThrow({ where: { tenantId: t.id } });
    const { outcome: _dropped, ...old } = (key.result as { value: Record<string, unknown> }).value;
    await db.idempotencyKey.update({ where: { tenantId_key: { tenantId: t.id, key: key.key } }, data: { result: { kind: 'result', value: old } as object } });
    expect((await gqlOk(app.url, t.key, CHAT_OUTCOME, input)).chat).toEqual(first);
  });

  it('a result stored by the previous release (its cost under usage.costUsd) replays with the same cost', async () => {
    const t = await createTenant(app.url);
    const input = hello('fast_classify', { maxTokens: 5, idempotencyKey: 'old-cost-name' });
    const first = (await gqlOk(app.url, t.key, CHAT_OUTCOME, input)).chat;
    expect(first.usage.costUsd).not.toBe('0.000000');
    const key = await db.idempotencyKey.findFirstOrThrow({ where: { tenantId: t.id } });
    const value = (key.result as { value: { usage: Record<string, unknown> } }).value;
    const { costMicros, ...usage } = value.usage;
    expect(typeof costMicros).toBe('string');
    const old = { ...value, usage: { ...usage, costUsd: costMicros } };
    await db.idempotencyKey.update({ where: { tenantId_key: { tenantId: t.id, key: key.key } }, data: { result: { kind: 'result', value: old } as object } });
    expect((await gqlOk(app.url, t.key, CHAT_OUTCOME, input)).chat).toEqual(first);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });
});

describe('the waiter cap over the API (item 13)', () => {
  let slowSim: Simulator;
  let capped: App;
  beforeAll(async () => {
    slowSim = await startSim(1); // real model pace: the first request runs about a second
    capped = await startApp({ IDEMPOTENCY_MAX_WAITERS: '1' }, slowSim);
  });
  afterAll(async () => {
    await capped?.stop();
    await slowSim?.close();
  });

  it('with IDEMPOTENCY_MAX_WAITERS 1, of two retries waiting on a running first request one waits and replays it, the other is RATE_LIMITED (429) IDEMPOTENCY_WAITERS', async () => {
    const t = await createTenant(capped.url);
    await gqlOk(
      capped.url,
      TEST_ADMIN_KEY,
      'mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_speed", model: "step-3.5-flash", fallbacks: []) { model } }',
      { t: t.id },
    );
    const input = hello('chat_speed', { maxTokens: 80, idempotencyKey: 'busy' });
    const first = gql(capped.url, t.key, CHAT_OUTCOME, input);
    await waitFor(async () => (await db.idempotencyKey.count({ where: { tenantId: t.id, key: 'busy', state: 'RUNNING' } })) === 1);
    const retries = await Promise.all([gql(capped.url, t.key, CHAT_OUTCOME, input), gql(capped.url, t.key, CHAT_OUTCOME, input)]);
    const done = await first;
    expect(done.errors).toBeUndefined();
    const refused = retries.filter((r) => r.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.status).toBe(429);
    expect(refused[0]!.errors![0]!.extensions).toMatchObject({ limit: 'IDEMPOTENCY_WAITERS', retryAfterMs: 1000 });
    expect(retries.find((r) => !r.errors)!.data).toEqual(done.data);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });
});

describe('idempotency waiters: woken by pub/sub, capped per process (items 12, 13)', () => {
  const logger = createLogger('silent');
  const redisConns: Redis[] = [];
  const signalSets: KeySignals[] = [];
  let tenantId: string;

  /** One process' worth of waiting: its own subscriber on `channel`, and an idempotency store using it. */
  const instance = async (maxWaiters: number, opts: { channel?: string; recheckMs?: number } = {}) => {
    const publisher = new Redis(TEST_REDIS_URL);
    const subscriber = new Redis(TEST_REDIS_URL);
    redisConns.push(publisher, subscriber);
    const signals = makeKeySignals({ publisher, subscriber, maxWaiters, logger, channel: opts.channel ?? `lg:test:${uniqueName()}` });
    signalSets.push(signals);
    await signals.ready;
    return { signals, idem: makeIdempotency({ db, ttlMs: 60_000, ownerLeaseMs: 60_000, signals, recheckMs: opts.recheckMs ?? 60_000 }) };
  };

  beforeAll(async () => {
    tenantId = (await db.tenant.create({ data: { name: uniqueName('idem') } })).id;
  });
  afterAll(async () => {
    for (const s of signalSets) await s.close();
    for (const r of redisConns) r.disconnect();
  });

  const result = (n: number): StoredOutcome => ({ kind: 'result', value: { requestId: `r${n}`, outcome: 'COMPLETED', content: 'x' } });

  it('waiters on two instances wake within moments of the finish, not by polling (their recheck is a minute); the one past the cap is RATE_LIMITED IDEMPOTENCY_WAITERS', async () => {
    // Two processes' worth: one channel shared by two subscriptions.
    const channel = `lg:test:${uniqueName()}`;
    const a = await instance(3, { channel });
    const b = await instance(3, { channel });
    const key = uniqueName('k');
    expect(await a.idem.claim(tenantId, key, 'h')).toEqual({ kind: 'owner' });
    const waiters = [a, a, a, b].map((x) => x.idem.claim(tenantId, key, 'h'));
    await waitFor(() => a.signals.waiting === 3 && b.signals.waiting === 1);

    const refused = await a.idem.claim(tenantId, key, 'h').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', extensions: { limit: 'IDEMPOTENCY_WAITERS', retryAfterMs: 1000 } });

    const t0 = Date.now();
    await a.idem.finish(tenantId, key, result(1));
    const replays = await Promise.all(waiters);
    expect(Date.now() - t0).toBeLessThan(1_000);
    for (const r of replays) expect(r).toEqual({ kind: 'replay', outcome: result(1) });
    expect(a.signals.waiting).toBe(0);
    expect(b.signals.waiting).toBe(0);
  });

  it('a released key wakes its waiter, which then owns it (the retry runs afresh)', async () => {
    const { signals: s, idem } = await instance(10);
    const key = uniqueName('k');
    await idem.claim(tenantId, key, 'h');
    const waiter = idem.claim(tenantId, key, 'h');
    await waitFor(() => s.waiting === 1);
    await idem.release(tenantId, key);
    expect(await waiter).toEqual({ kind: 'owner' });
  });

  it('a lost wake-up only delays a waiter until its recheck', async () => {
    const { signals: s, idem } = await instance(10, { recheckMs: 200 });
    const key = uniqueName('k');
    await idem.claim(tenantId, key, 'h');
    const waiter = idem.claim(tenantId, key, 'h');
    await waitFor(() => s.waiting === 1);
    // Finished behind the signals' back (as if the publish had failed).
    await db.idempotencyKey.update({ where: { tenantId_key: { tenantId, key } }, data: { state: 'DONE', result: result(2) as object } });
    expect(await waiter).toEqual({ kind: 'replay', outcome: result(2) });
  });

  it('a waiter whose client goes away stops waiting at once and frees its place', async () => {
    const { signals: s, idem } = await instance(10);
    const key = uniqueName('k');
    await idem.claim(tenantId, key, 'h');
    const ac = new AbortController();
    const waiter = idem.claim(tenantId, key, 'h', ac.signal).catch((e: unknown) => e);
    await waitFor(() => s.waiting === 1);
    ac.abort();
    expect(await waiter).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(s.waiting).toBe(0);
  });
});
