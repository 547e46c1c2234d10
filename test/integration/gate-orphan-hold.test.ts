import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import { makeLimiter } from '../../src/limits';
import { limitKeys } from '../../src/limits/keys';
import { WRITE_AHEAD_DEADLINE_MS } from '../../src/accounting/ledger';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gqlOk, hello, startApp, startSim } from '../support/app';

/**
 * A reservation whose write-ahead INSERT failed and whose release failed too (Postgres and Redis cut at once) leaves
 * a hold with no ledger row. The reconciler releases such a hold once it is older than the write-ahead deadline, and
 * only then: a younger one may belong to a request whose INSERT is still on its way.
 */
let sim: Simulator;
let app: App;
let redis: Redis;

beforeAll(async () => {
  sim = await startSim();
  app = await startApp({}, sim);
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
  redis?.disconnect();
});

test('a hold with no ledger row is released after the write-ahead deadline, not before', async () => {
  const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
  await gqlOk(app.url, t.key, CHAT, hello()); // the tenant is active this month: the month is seeded, the ledger has a row
  const month = monthOf(new Date());
  let skew = 0;
  const limiter = makeLimiter(redis, { clockOffsetMs: () => skew });
  const admit = (requestId: string) =>
    limiter.admit({
      tenantId: t.id,
      requestId,
      month,
      requestsPerMinute: null,
      tokensPerMinute: null,
      tokensEstimate: 10,
      budgetMicros: 1_000_000n,
      holdMicros: 700n,
      holdTtlMs: 600_000,
    });

  const orphanOld = randomUUID();
  const orphanYoung = randomUUID();
  skew = -(WRITE_AHEAD_DEADLINE_MS + 5_000);
  expect((await admit(orphanOld)).allowed).toBe(true);
  skew = 0;
  expect((await admit(orphanYoung)).allowed).toBe(true);
  expect((await limiter.budgetState(t.id, month))!.heldMicros).toBe(1_400n);

  await app.reconcileOnce();
  // The old one had no row: released. The young one may still get its row: kept.
  expect((await limiter.budgetState(t.id, month))!.heldMicros).toBe(700n);
  expect(await redis.hexists(limitKeys().month(t.id, month).holdAmounts, orphanYoung)).toBe(1);
  expect(await redis.hexists(limitKeys().month(t.id, month).holdAmounts, orphanOld)).toBe(0);
});
