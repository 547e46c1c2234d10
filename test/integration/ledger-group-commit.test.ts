import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type pg from 'pg';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool, type SqlPool } from '../../src/infra/postgres';
import { makeLedger, type HeldEntry, type Settlement } from '../../src/accounting/ledger';
import { LedgerConflict } from '../../src/accounting/ledger-writes';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import { limitKeys } from '../../src/limits/keys';
import type { Simulator } from '../../src/simulator/server';
import { startTcpProxy, type TcpProxy } from '../support/faults';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim } from '../support/app';
import { until } from '../support/wait';
import { GLM5_PRICES, heldEntry } from '../support/ledger-entries';

/**
 * Group commit of the two per-request ledger statements, on the real Postgres: concurrent write-ahead INSERTs and
 * settling UPDATEs share statements, a row that cannot land fails only its own request, and a connection cut under a
 * batch fails that batch's requests closed (SERVICE_UNAVAILABLE, their holds given back, no upstream call).
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const pool = createSqlPool(TEST_DATABASE_URL, { max: 4 });
/** Every statement the ledger sends, counted at the pool. */
let statements = 0;
const counted: SqlPool = {
  query: ((...args: Parameters<pg.Pool['query']>) => {
    statements++;
    return (pool.query as (...a: unknown[]) => unknown)(...args);
  }) as pg.Pool['query'],
  end: () => pool.end(),
};
const ledger = makeLedger(db, counted);
let tenantId: string;

const entry = (over: Partial<HeldEntry> = {}): HeldEntry => heldEntry(tenantId, over);
const settlement = (costMicros: bigint, startedAt = new Date()): Settlement => ({
  startedAt,
  model: 'glm-5',
  attempts: [],
  promptTokens: 20,
  completionTokens: 100,
  cachedPromptTokens: 0,
  cacheWriteTokens: 0,
  unpricedPromptTokens: 0,
  prices: GLM5_PRICES['glm-5'],
  costMicros,
  outcome: 'COMPLETED',
  usageSource: 'PROVIDER',
  endedAt: new Date(),
});
const rowsOf = (ids: string[]) =>
  db.ledgerEntry.findMany({ where: { requestId: { in: ids } }, select: { requestId: true, state: true, costMicros: true, holdMicros: true } });

beforeAll(async () => {
  tenantId = (await db.tenant.create({ data: { name: `group-commit-${randomUUID()}` } })).id;
});
afterAll(async () => {
  await Promise.all([db.$disconnect(), pool.end()]);
});

test('32 concurrent holds and then their 32 settlements: each group takes a few statements, every row lands once', async () => {
  const entries = Array.from({ length: 32 }, () => entry());
  statements = 0;
  await Promise.all(entries.map((e) => ledger.hold(e)));
  const insertStatements = statements;
  // The first goes alone (nothing was in flight), the other 31 queue behind it: two statements.
  expect(insertStatements).toBe(2);
  const ids = entries.map((e) => e.requestId);
  expect((await rowsOf(ids)).map((r) => r.state)).toEqual(Array(32).fill('HELD'));

  statements = 0;
  const settled = await Promise.all(entries.map((e, i) => ledger.settle(e.requestId, settlement(BigInt(100 + i), e.startedAt))));
  expect(settled).toEqual(Array(32).fill(true));
  expect(statements).toBe(2);
  const rows = await rowsOf(ids);
  expect(rows.every((r) => r.state === 'SETTLED')).toBe(true);
  expect(new Map(rows.map((r) => [r.requestId, r.costMicros]))).toEqual(new Map(ids.map((id, i) => [id, BigInt(100 + i)])));
  // Settled already: false, exactly once per request (in a batch or alone).
  expect(
    await Promise.all([ledger.settle(ids[0]!, settlement(1n, entries[0]!.startedAt)), ledger.settle(ids[1]!, settlement(1n, entries[1]!.startedAt))]),
  ).toEqual([false, false]);
});

test('a request id that already has a row fails alone (ON CONFLICT ... RETURNING), its batch-mates land', async () => {
  const existing = entry();
  await ledger.hold(existing);
  const first = ledger.hold(entry()); // in flight: the next three queue together
  const [a, dup, b] = [entry(), entry({ requestId: existing.requestId, holdMicros: 999n }), entry()];
  statements = 0;
  const results = await Promise.allSettled([ledger.hold(a), ledger.hold(dup), ledger.hold(b)]);
  await first;
  expect(statements).toBe(1); // the three went as one statement
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(LedgerConflict);
  const rows = await rowsOf([a.requestId, b.requestId, existing.requestId]);
  expect(rows).toHaveLength(3);
  expect(rows.find((r) => r.requestId === existing.requestId)!.holdMicros).toBe(500n); // the first row is untouched
});

test('a row Postgres refuses (its tenant is gone) fails alone: the batch is written again row by row', async () => {
  const first = ledger.hold(entry());
  const orphan = entry({ tenantId: randomUUID() }); // no such tenant: a foreign-key violation fails the whole statement
  const [a, b] = [entry(), entry()];
  const results = await Promise.allSettled([ledger.hold(a), ledger.hold(orphan), ledger.hold(b)]);
  await first;
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/foreign key/);
  expect((await rowsOf([a.requestId, b.requestId, orphan.requestId])).map((r) => r.requestId).sort()).toEqual([a.requestId, b.requestId].sort());
});

test('a value Postgres would refuse is refused before it joins a batch, naming the field', async () => {
  statements = 0;
  await expect(ledger.hold(entry({ requestId: 'not-a-uuid' }))).rejects.toThrow('requestId must be a UUID');
  await expect(ledger.hold(entry({ maxTokens: 2 ** 31 }))).rejects.toThrow('maxTokens must be an integer');
  await expect(ledger.hold(entry({ profile: 'a\u0000b' }))).rejects.toThrow('profile must not contain NUL');
  await expect(ledger.settle('nope', settlement(1n))).rejects.toThrow('requestId must be a UUID');
  expect(statements).toBe(0);
});

describe('Postgres cut under a batch of write-ahead INSERTs', () => {
  let sim: Simulator;
  let app: App;
  let proxy: TcpProxy;
  const redis = new Redis(TEST_REDIS_URL);

  beforeAll(async () => {
    sim = await startSim(0);
    const u = new URL(TEST_DATABASE_URL);
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) });
    app = await startApp({ DATABASE_URL: proxy.url(TEST_DATABASE_URL) }, sim, { background: false });
  });
  afterAll(async () => {
    await app?.stop();
    await proxy?.close();
    await sim?.close();
    redis.disconnect();
  });

  test('every request of the cut batch gets SERVICE_UNAVAILABLE, no hold stays in Redis and the upstream is never called', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '100' });
    await gqlOk(app.url, t.key, CHAT, hello()); // warms the caches: from here on only the ledger needs Postgres
    const month = monthOf(new Date());
    const limiter = makeLimiter(redis);
    const before = (await (await fetch(`${new URL(sim.url).origin}/__sim/stats`)).json()) as { requests: Record<string, number> };
    const calls = (s: typeof before) => Object.values(s.requests).reduce((x, y) => x + y, 0);

    proxy.pause(); // the INSERTs reach the proxy and stay there
    const answers = Array.from({ length: 6 }, () => gql(app.url, t.key, CHAT, hello()));
    // All six are admitted (their holds are in Redis) and waiting on their write-ahead row.
    await until(async () => (await redis.hlen(limitKeys().month(t.id, month).holdAmounts)) === 6, 'six holds in Redis');
    proxy.refuse(true); // the batch queued behind the cut one cannot reconnect either
    proxy.cut();
    proxy.resume();
    const results = await Promise.all(answers);
    proxy.refuse(false);

    for (const r of results) {
      expect(r.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(r.errors?.[0]?.message).toMatch(/Postgres/);
    }
    expect((await limiter.budgetState(t.id, month))!.heldMicros).toBe(0n);
    const after = (await (await fetch(`${new URL(sim.url).origin}/__sim/stats`)).json()) as typeof before;
    expect(calls(after)).toBe(calls(before));
    // Postgres back: the next request is served.
    await gqlOk(app.url, t.key, CHAT, hello());
  });
});
