import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { makeLimiter, type AdmitInput, type Limiter } from '../../src/limits';
import { luaScript, runScript } from '../../src/limits/run-script';
import { testRedis } from '../support/test-redis';
import { admitInput, seedTenant } from '../support/limiter-inputs';

/**
 * The fast gate against the machine's real Redis (database 15). Two clients stand for two gateway instances: every
 * exactness claim is made with admissions racing across both.
 */

let inspect: Redis;
let redisA: Redis;
let redisB: Redis;
let a: Limiter;
let b: Limiter;
/** Both instances read Redis TIME moved forward by this much (the limiter's test-only clock offset). */
let clockOffset = 0;
const clockOffsetMs = () => clockOffset;

const MONTH = '2026-11';
const month = MONTH;

beforeAll(async () => {
  inspect = testRedis();
  redisA = testRedis('limits-test-a');
  redisB = testRedis('limits-test-b');
  await inspect.flushdb();
  a = makeLimiter(redisA, { clockOffsetMs });
  b = makeLimiter(redisB, { clockOffsetMs });
});

beforeEach(() => {
  clockOffset = 0;
});

afterAll(async () => {
  await Promise.all([inspect.quit(), redisA.quit(), redisB.quit()]);
});

const newTenant = (): string => `t-${randomUUID()}`;
const newRequest = (): string => `r-${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const input = (tenantId: string, over: Partial<AdmitInput> = {}): AdmitInput => admitInput(tenantId, month, over);
const seeded = (tenantId: string, spentMicros = 0n): Promise<string> => seedTenant(a, tenantId, month, spentMicros);

/** Every key of a tenant with its full content (not its TTL), to prove a call changed nothing. */
async function snapshot(tenantId: string): Promise<Record<string, unknown>> {
  const keys = (await inspect.keys(`lg:{${tenantId}}:*`)).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const type = await inspect.type(k);
    if (type === 'hash') out[k] = await inspect.hgetall(k);
    else if (type === 'zset') out[k] = await inspect.zrange(k, '0', '-1', 'WITHSCORES');
    else out[k] = await inspect.get(k);
  }
  return out;
}

/** A request's settled marker, from whichever hourly slot holds it. */
async function markerOf(tenantId: string, requestId: string): Promise<string | null> {
  const [m0, m1] = await Promise.all([0, 1].map((slot) => inspect.hget(`lg:{${tenantId}}:v2:settled:${slot}`, requestId)));
  return m0 ?? m1 ?? null;
}

const allowedCount = (rs: ReadonlyArray<{ allowed: boolean }>) => rs.filter((r) => r.allowed).length;

describe('requests per minute', () => {
  it('admits exactly the limit when 30 admissions race across two instances', async () => {
    const t = await seeded(newTenant());
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).admit(input(t, { requestsPerMinute: 10 }))));
    expect(allowedCount(results)).toBe(10);
    for (const r of results) {
      if (r.allowed) continue;
      expect(r).toMatchObject({ reason: 'RATE_LIMITED', limit: 'REQUESTS_PER_MINUTE' });
      if (r.reason !== 'RATE_LIMITED') throw new Error('unreachable');
      // A rolling window: the next admission is when the burst leaves it, 60 to 61 s from now (1 s buckets).
      expect(r.retryAfterMs).toBeGreaterThan(59_000);
      expect(r.retryAfterMs).toBeLessThanOrEqual(61_000);
      expect(r.exceedsLimit).toBeUndefined();
    }
  });

  it('rolling window: RPM 3 admits 3 at once, then nothing at 20 s and 40 s, and one more exactly at retryAfterMs', async () => {
    const t = await seeded(newTenant());
    const burst = await Promise.all(Array.from({ length: 5 }, (_, i) => (i % 2 ? a : b).admit(input(t, { requestsPerMinute: 3 }))));
    expect(allowedCount(burst)).toBe(3);
    clockOffset = 20_000;
    expect((await a.admit(input(t, { requestsPerMinute: 3 }))).allowed).toBe(false);
    clockOffset = 40_000;
    const denied = await b.admit(input(t, { requestsPerMinute: 3 }));
    if (denied.allowed || denied.reason !== 'RATE_LIMITED') throw new Error(`expected RATE_LIMITED, got ${JSON.stringify(denied)}`);
    // The burst leaves the window 60-61 s after it was admitted: 20-21 s from "now" (40 s in).
    expect(denied.retryAfterMs).toBeGreaterThan(19_000);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(21_000);
    clockOffset = 40_000 + denied.retryAfterMs - 50;
    expect((await a.admit(input(t, { requestsPerMinute: 3 }))).allowed).toBe(false);
    clockOffset = 40_000 + denied.retryAfterMs;
    const later = await Promise.all(Array.from({ length: 4 }, (_, i) => (i % 2 ? a : b).admit(input(t, { requestsPerMinute: 3 }))));
    expect(allowedCount(later)).toBe(3);
  });

  it('keeps memory per tenant bounded: one field per second of the window', async () => {
    const t = await seeded(newTenant());
    for (let s = 0; s < 200; s++) {
      clockOffset = s * 1_000;
      await a.admit(input(t, { requestsPerMinute: 1_000_000, tokensPerMinute: 1_000_000 }));
    }
    expect(await inspect.hlen(`lg:{${t}}:v2:win:rpm`)).toBeLessThanOrEqual(61);
    expect(await inspect.hlen(`lg:{${t}}:v2:win:tpm`)).toBeLessThanOrEqual(61);
  });

  it('a limit of 0 admits nothing and says no wait helps', async () => {
    const t = await seeded(newTenant());
    expect(await a.admit(input(t, { requestsPerMinute: 0 }))).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'REQUESTS_PER_MINUTE',
      scope: 'TENANT',
      retryAfterMs: 60_000,
      exceedsLimit: true,
    });
  });
});

describe('tokens per minute', () => {
  it('charges the estimate at admission, exactly, across two instances', async () => {
    const t = await seeded(newTenant());
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 300 }))));
    expect(allowedCount(results)).toBe(3);
    const denied = results.find((r) => !r.allowed);
    expect(denied).toMatchObject({ reason: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE' });
    // 100 tokens left: nothing of 300 fits until the three leave the window, 60-61 s from now.
    if (denied?.allowed === false && denied.reason === 'RATE_LIMITED') {
      expect(denied.retryAfterMs).toBeGreaterThan(59_000);
      expect(denied.retryAfterMs).toBeLessThanOrEqual(61_000);
    }
  });

  it('settlement corrects by actual - estimate: a refund admits more, once', async () => {
    const t = await seeded(newTenant());
    const ids = [newRequest(), newRequest(), newRequest()];
    for (const requestId of ids) {
      expect(await a.admit(input(t, { requestId, tokensPerMinute: 1_000, tokensEstimate: 300 }))).toMatchObject({ allowed: true });
    }
    expect((await a.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 300 }))).allowed).toBe(false);
    // Each used 100 of its 300: 600 tokens come back (100 were left), room for exactly two more of 300.
    for (const requestId of ids) {
      const s = { tenantId: t, requestId, month, actualMicros: 0n, actualTokens: 100, tokensEstimate: 300 };
      expect(await a.settle(s)).toEqual({ applied: true });
      expect(await b.settle(s)).toEqual({ applied: false }); // refunded once, not twice
    }
    const after = await Promise.all(Array.from({ length: 5 }, () => b.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 300 }))));
    expect(allowedCount(after)).toBe(2);
  });

  it('settlement charges an underestimate, so the next admission waits', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    expect(await a.admit(input(t, { requestId, tokensPerMinute: 1_000, tokensEstimate: 100 }))).toMatchObject({ allowed: true });
    await a.settle({ tenantId: t, requestId, month, actualMicros: 0n, actualTokens: 900, tokensEstimate: 100 });
    // 900 used, about 100 left: an estimate of 200 no longer fits.
    expect((await a.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 200 }))).allowed).toBe(false);
  });

  it('denies, never admits, a request larger than the whole limit', async () => {
    const t = await seeded(newTenant());
    const before = await snapshot(t);
    const r = await a.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 1_001 }));
    expect(r).toEqual({ allowed: false, reason: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE', scope: 'TENANT', retryAfterMs: 60_000, exceedsLimit: true });
    expect(await snapshot(t)).toEqual(before);
    expect(await a.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 1_000 }))).toMatchObject({ allowed: true });
  });

  it('when both limits deny, reports the longer wait', async () => {
    const t = await seeded(newTenant());
    const limits = { requestsPerMinute: 2, tokensPerMinute: 1_000 };
    expect((await a.admit(input(t, { ...limits, tokensEstimate: 100 }))).allowed).toBe(true);
    clockOffset = 30_000;
    expect((await a.admit(input(t, { ...limits, tokensEstimate: 900 }))).allowed).toBe(true);
    // RPM: a slot frees when the first leaves (~31 s); TPM: 500 more fit only when both have left (~61 s).
    const r = await a.admit(input(t, { ...limits, tokensEstimate: 500 }));
    expect(r).toMatchObject({ allowed: false, reason: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE' });
    if (!r.allowed && r.reason === 'RATE_LIMITED') expect(r.retryAfterMs).toBeGreaterThan(59_000);
  });
});

describe('budget', () => {
  it('budget 1000, holds of 288, 200 admissions racing on two instances: exactly 3; settled: spent 864, held 0', async () => {
    const t = await seeded(newTenant());
    const inputs = Array.from({ length: 200 }, () => input(t, { budgetMicros: 1_000n, holdMicros: 288n }));
    const results = await Promise.all(inputs.map((i, n) => (n % 2 ? a : b).admit(i)));
    expect(allowedCount(results)).toBe(3);
    for (const r of results.filter((r) => !r.allowed)) expect(r).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'TENANT', remainingMicros: 136n });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 864n });

    const admitted = inputs.filter((_, n) => results[n]!.allowed);
    const settled = await Promise.all(
      admitted.map((i, n) =>
        (n % 2 ? a : b).settle({ tenantId: t, requestId: i.requestId, month, actualMicros: 288n, actualTokens: 100, tokensEstimate: 100 }),
      ),
    );
    expect(settled.every((s) => s.applied)).toBe(true);
    expect(await b.budgetState(t, month)).toEqual({ spentMicros: 864n, heldMicros: 0n });
  });

  it('counts spent + held + hold <= budget: the last micro fits, one more does not', async () => {
    const t = await seeded(newTenant(), 400n);
    expect((await a.admit(input(t, { budgetMicros: 1_000n, holdMicros: 300n }))).allowed).toBe(true);
    expect(await a.admit(input(t, { budgetMicros: 1_000n, holdMicros: 301n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'TENANT',
      remainingMicros: 300n,
    });
    expect((await a.admit(input(t, { budgetMicros: 1_000n, holdMicros: 300n }))).allowed).toBe(true);
    // Reserved + settled reach the budget: not even a request that holds nothing is admitted.
    expect(await a.admit(input(t, { budgetMicros: 1_000n, holdMicros: 0n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'TENANT',
      remainingMicros: 0n,
    });
  });

  it('a denied admission changes nothing: no rate taken, no hold', async () => {
    const t = await seeded(newTenant());
    const limits = { requestsPerMinute: 5, tokensPerMinute: 1_000, budgetMicros: 1_000n };
    expect((await a.admit(input(t, { ...limits, holdMicros: 900n, tokensEstimate: 500 }))).allowed).toBe(true);
    const before = await snapshot(t);
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(4); // budget, holds, amounts, rpm, tpm
    // Over budget (rates would allow), over tokens (budget would allow):
    expect((await a.admit(input(t, { ...limits, holdMicros: 101n, tokensEstimate: 1 }))).allowed).toBe(false);
    expect((await b.admit(input(t, { ...limits, holdMicros: 1n, tokensEstimate: 600 }))).allowed).toBe(false);
    expect(await snapshot(t)).toEqual(before);
  });

  it('a rate-limited admission takes no hold and no budget', async () => {
    const t = await seeded(newTenant());
    expect((await a.admit(input(t, { requestsPerMinute: 1, budgetMicros: 1_000n, holdMicros: 10n }))).allowed).toBe(true);
    const before = await snapshot(t);
    expect((await b.admit(input(t, { requestsPerMinute: 1, budgetMicros: 1_000n, holdMicros: 10n }))).allowed).toBe(false);
    expect(await snapshot(t)).toEqual(before);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 10n });
  });

  it('without a budget still tracks held and spent', async () => {
    const t = await seeded(newTenant(), 7n);
    const requestId = newRequest();
    expect(await a.admit(input(t, { requestId, budgetMicros: null, holdMicros: 9_000_000_000n }))).toMatchObject({ allowed: true });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 7n, heldMicros: 9_000_000_000n });
    await a.settle({ tenantId: t, requestId, month, actualMicros: 5n, actualTokens: 1, tokensEstimate: 100 });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 12n, heldMicros: 0n });
  });

  it('keeps money beyond 2^31 and 2^32 micros exact', async () => {
    const t = await seeded(newTenant(), 1_234_567_890_123n);
    const budget = 5_000_000_000_000n;
    const first = input(t, { budgetMicros: budget, holdMicros: 3_000_000_000_001n });
    expect(await a.admit(first)).toMatchObject({ allowed: true });
    // Left: 5e12 - 1 234 567 890 123 - 3 000 000 000 001 = 765 432 109 876.
    expect(await a.admit(input(t, { budgetMicros: budget, holdMicros: 765_432_109_877n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'TENANT',
      remainingMicros: 765_432_109_876n,
    });
    expect(await b.admit(input(t, { budgetMicros: budget, holdMicros: 765_432_109_876n }))).toMatchObject({ allowed: true });
    await a.settle({ tenantId: t, requestId: first.requestId, month, actualMicros: 2_999_999_999_999n, actualTokens: 1, tokensEstimate: 1 });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 4_234_567_890_122n, heldMicros: 765_432_109_876n });
    expect(await inspect.hget(`lg:{${t}}:v2:budget:${month}`, 'spent')).toBe('4234567890122');
  });

  it('refuses amounts Lua numbers cannot hold exactly, before touching Redis', async () => {
    const t = await seeded(newTenant());
    await expect(a.admit(input(t, { holdMicros: 2n ** 53n }))).rejects.toThrow(RangeError);
    await expect(a.admit(input(t, { holdMicros: -1n }))).rejects.toThrow(RangeError);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 0n });
  });
});

describe('cold start', () => {
  it('answers NEEDS_RESEED for a missing month and changes nothing, rate included', async () => {
    const t = newTenant();
    const i = input(t, { requestsPerMinute: 1, tokensPerMinute: 100, tokensEstimate: 100, budgetMicros: 10n, holdMicros: 10n });
    expect(await a.admit(i)).toEqual({ allowed: false, reason: 'NEEDS_RESEED' });
    expect(await inspect.keys(`lg:{${t}}:*`)).toEqual([]);
    expect(await a.budgetState(t, month)).toBeNull();
    // Had the first call taken the one request per minute or the 100 tokens, this would be RATE_LIMITED.
    await seeded(t);
    expect(await a.admit(i)).toMatchObject({ allowed: true });
  });

  it('reseed is SET, never additive: a second reseed changes nothing', async () => {
    const t = newTenant();
    const [r1, r2] = await Promise.all([
      a.reseed({ tenantId: t, month, spentMicros: 500n, holds: [] }),
      b.reseed({ tenantId: t, month, spentMicros: 500n, holds: [] }),
    ]);
    expect([r1.seeded, r2.seeded].sort()).toEqual([false, true]);
    expect(await a.reseed({ tenantId: t, month, spentMicros: 999n, holds: [] })).toEqual({ seeded: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 500n, heldMicros: 0n });
  });

  it('gives the month state a TTL of about 40 days', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, holdMicros: 1n }));
    await a.settle({ tenantId: t, requestId, month, actualMicros: 1n, actualTokens: 1, tokensEstimate: 1 });
    const day = 86_400_000;
    const budgetTtl = await inspect.pttl(`lg:{${t}}:v2:budget:${month}`);
    expect(budgetTtl).toBeGreaterThan(39 * day);
    expect(budgetTtl).toBeLessThanOrEqual(40 * day);
  });

  it('reseeds holds, skipping expired ones, and a hold settled later releases it', async () => {
    const t = newTenant();
    const live = newRequest();
    const expired = newRequest();
    const now = Date.now();
    await a.reseed({
      tenantId: t,
      month,
      spentMicros: 1_000n,
      holds: [
        { requestId: live, holdMicros: 400n, expiresAtMs: now + 60_000, admittedAtMs: Date.now() },
        { requestId: expired, holdMicros: 300n, expiresAtMs: now - 1_000, admittedAtMs: Date.now() },
      ],
    });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_000n, heldMicros: 400n });
    await a.settle({ tenantId: t, requestId: live, month, actualMicros: 250n, actualTokens: 1, tokensEstimate: 1 });
    // The expired hold was never re-held, but its settlement still lands, once.
    await a.settle({ tenantId: t, requestId: expired, month, actualMicros: 200n, actualTokens: 1, tokensEstimate: 1 });
    await b.settle({ tenantId: t, requestId: expired, month, actualMicros: 200n, actualTokens: 1, tokensEstimate: 1 });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_450n, heldMicros: 0n });
  });

  it('seeds the rate buckets from the last minute, so a flush hands out no fresh burst', async () => {
    const t = newTenant();
    await a.reseed({
      tenantId: t,
      month,
      spentMicros: 0n,
      holds: [],
      requestsPerMinute: 10,
      requestsLastMinute: 8,
      tokensPerMinute: 1_000,
      tokensLastMinute: 100,
    });
    const rs = await Promise.all(Array.from({ length: 10 }, () => a.admit(input(t, { requestsPerMinute: 10, tokensEstimate: 1 }))));
    expect(allowedCount(rs)).toBe(2);
    const ts = await Promise.all(Array.from({ length: 10 }, () => b.admit(input(t, { tokensPerMinute: 1_000, tokensEstimate: 300 }))));
    expect(allowedCount(ts)).toBe(3);
  });
});

describe('settle', () => {
  it('is idempotent: the second call applies nothing', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, budgetMicros: 1_000n, holdMicros: 500n }));
    const s = { tenantId: t, requestId, month, actualMicros: 120n, actualTokens: 10, tokensEstimate: 100 };
    const results = await Promise.all([a.settle(s), b.settle(s), a.settle(s)]);
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 120n, heldMicros: 0n });
    expect(await markerOf(t, requestId)).toBe('120');
  });

  it('never increments a missing month: it writes only the marker', async () => {
    const t = newTenant();
    const requestId = newRequest();
    expect(await a.settle({ tenantId: t, requestId, month, actualMicros: 77n, actualTokens: 1, tokensEstimate: 1 })).toEqual({ applied: true });
    expect(await inspect.keys(`lg:{${t}}:*`)).toHaveLength(1);
    expect(await markerOf(t, requestId)).toBe('77');
    expect(await a.budgetState(t, month)).toBeNull();
  });

  it('never increments a month whose budget key vanished, even with its holds left behind', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, holdMicros: 40n }));
    await inspect.del(`lg:{${t}}:v2:budget:${month}`); // evicted or expired alone
    expect(await a.settle({ tenantId: t, requestId, month, actualMicros: 30n, actualTokens: 1, tokensEstimate: 1 })).toEqual({ applied: true });
    expect(await inspect.exists(`lg:{${t}}:v2:budget:${month}`)).toBe(0);
    // The reseed rebuilds from Postgres (here: it settled at 30) and drops the stale hold.
    await a.reseed({ tenantId: t, month, spentMicros: 30n, holds: [] });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 30n, heldMicros: 0n });
    expect(await inspect.exists(`lg:{${t}}:v2:hold-amounts:${month}`)).toBe(0);
  });

  it('race: settled while the month was missing, then reseeded with that request among the holds: counted once', async () => {
    const t = newTenant();
    const racing = newRequest();
    const other = newRequest();
    // The reseeder read Postgres: spent 1000 settled, two rows still HELD. Then, before its SET, `racing` settles.
    const pgSpent = 1_000n;
    const pgHolds = [
      { requestId: racing, holdMicros: 500n, expiresAtMs: Date.now() + 60_000, admittedAtMs: Date.now() },
      { requestId: other, holdMicros: 200n, expiresAtMs: Date.now() + 60_000, admittedAtMs: Date.now() },
    ];
    expect(await b.settle({ tenantId: t, requestId: racing, month, actualMicros: 321n, actualTokens: 1, tokensEstimate: 1 })).toEqual({ applied: true });
    expect(await a.reseed({ tenantId: t, month, spentMicros: pgSpent, holds: pgHolds })).toEqual({ seeded: true });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_321n, heldMicros: 200n });
    expect(await inspect.hexists(`lg:{${t}}:v2:hold-amounts:${month}`, racing)).toBe(0);
    // A retried settlement of it changes nothing.
    expect(await a.settle({ tenantId: t, requestId: racing, month, actualMicros: 321n, actualTokens: 1, tokensEstimate: 1 })).toEqual({ applied: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_321n, heldMicros: 200n });
  });

  it('race, other order: reseeded with the request held, then settled: applied once', async () => {
    const t = newTenant();
    const requestId = newRequest();
    await a.reseed({
      tenantId: t,
      month,
      spentMicros: 1_000n,
      holds: [{ requestId, holdMicros: 500n, expiresAtMs: Date.now() + 60_000, admittedAtMs: Date.now() }],
    });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_000n, heldMicros: 500n });
    const s = { tenantId: t, requestId, month, actualMicros: 321n, actualTokens: 1, tokensEstimate: 1 };
    expect(await b.settle(s)).toEqual({ applied: true });
    expect(await a.settle(s)).toEqual({ applied: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_321n, heldMicros: 0n });
  });

  it('a request the reseed read as settled in Postgres is not added again', async () => {
    const t = newTenant();
    const requestId = newRequest();
    // Postgres already had it settled (its 321 is inside spentMicros); the Redis settle arrives after the reseed.
    await a.reseed({ tenantId: t, month, spentMicros: 1_321n, holds: [], recentlySettled: [{ requestId, costMicros: 321n }] });
    expect(await a.settle({ tenantId: t, requestId, month, actualMicros: 321n, actualTokens: 1, tokensEstimate: 1 })).toEqual({ applied: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_321n, heldMicros: 0n });
  });

  it('an id that never had a hold (an amendment) adds its amount once', async () => {
    const t = await seeded(newTenant(), 100n);
    const s = { tenantId: t, requestId: `${newRequest()}:v2`, month, actualMicros: 40n, actualTokens: 30, tokensEstimate: 0 };
    const results = await Promise.all([a.settle(s), b.settle(s)]);
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 140n, heldMicros: 0n });
  });
});

describe('hold expiry', () => {
  it('sweeps expired holds, frees their budget, and a late settlement still adds its cost once', async () => {
    const t = await seeded(newTenant());
    const first = input(t, { budgetMicros: 1_000n, holdMicros: 600n, holdTtlMs: 150 });
    expect(await a.admit(first)).toMatchObject({ allowed: true });
    expect((await b.admit(input(t, { budgetMicros: 1_000n, holdMicros: 600n }))).allowed).toBe(false);
    await sleep(250);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 0n });
    expect(await b.admit(input(t, { budgetMicros: 1_000n, holdMicros: 600n }))).toMatchObject({ allowed: true });

    const s = { tenantId: t, requestId: first.requestId, month, actualMicros: 350n, actualTokens: 1, tokensEstimate: 1 };
    expect(await a.settle(s)).toEqual({ applied: true });
    expect(await b.settle(s)).toEqual({ applied: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 350n, heldMicros: 600n });
  });

  it('admit releases expired holds (and only those) before it counts', async () => {
    const t = await seeded(newTenant());
    await Promise.all([1n, 2n, 3n].map((h) => a.admit(input(t, { holdMicros: h, holdTtlMs: 50 }))));
    await a.admit(input(t, { holdMicros: 10n, holdTtlMs: 60_000 }));
    await sleep(100);
    // The raw hash, not budgetState (which sweeps too): what the other instance's admit left.
    await b.admit(input(t, { holdMicros: 0n }));
    expect(await inspect.hget(`lg:{${t}}:v2:budget:${month}`, 'held')).toBe('10');
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 10n });

    await a.admit(input(t, { holdMicros: 5n, holdTtlMs: 30 }));
    await sleep(60);
    await a.admit(input(t, { holdMicros: 0n }));
    expect(await inspect.hget(`lg:{${t}}:v2:budget:${month}`, 'held')).toBe('10');
  });
});

describe('extendHold', () => {
  it('grows a hold within the budget and refuses beyond it, changing nothing', async () => {
    const t = await seeded(newTenant(), 100n);
    const requestId = newRequest();
    await a.admit(input(t, { requestId, budgetMicros: 1_000n, holdMicros: 400n }));
    const ext = { tenantId: t, requestId, month, budgetMicros: 1_000n, holdTtlMs: 60_000 };
    expect(await b.extendHold({ ...ext, extraMicros: 300n })).toEqual({ allowed: true, remainingMicros: 200n });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 100n, heldMicros: 700n });
    const before = await snapshot(t);
    expect(await b.extendHold({ ...ext, extraMicros: 201n })).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'TENANT', remainingMicros: 200n });
    expect(await snapshot(t)).toEqual(before);
    // Settling releases the whole, extended hold.
    await a.settle({ tenantId: t, requestId, month, actualMicros: 650n, actualTokens: 1, tokensEstimate: 1 });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 750n, heldMicros: 0n });
  });

  it('without a budget always grows; refuses a settled request and a missing month', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, holdMicros: 5n }));
    const ext = { tenantId: t, requestId, month, budgetMicros: null, holdTtlMs: 60_000, extraMicros: 10n };
    expect(await a.extendHold(ext)).toEqual({ allowed: true, remainingMicros: null });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 15n });
    await a.settle({ tenantId: t, requestId, month, actualMicros: 12n, actualTokens: 1, tokensEstimate: 1 });
    expect(await a.extendHold(ext)).toEqual({ allowed: false, reason: 'ALREADY_SETTLED', remainingMicros: null });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 12n, heldMicros: 0n });
    expect(await a.extendHold({ ...ext, tenantId: newTenant() })).toEqual({ allowed: false, reason: 'NEEDS_RESEED', remainingMicros: null });
  });

  it('keeps an extended hold alive past its original expiry', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, holdMicros: 5n, holdTtlMs: 100 }));
    await a.extendHold({ tenantId: t, requestId, month, budgetMicros: null, holdTtlMs: 60_000, extraMicros: 1n });
    await sleep(150);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 6n });
  });
});

describe('script runner', () => {
  it('falls back to EVAL when the server does not know the script, then runs it by SHA', async () => {
    // A script text no server has seen (no SCRIPT FLUSH: other suites share this Redis).
    const script = luaScript('probe', `return ARGV[1] -- ${randomUUID()}`);
    expect(await inspect.script('EXISTS', script.sha)).toEqual([0]);
    expect(await runScript(redisA, script, [], ['hello'])).toBe('hello');
    expect(await inspect.script('EXISTS', script.sha)).toEqual([1]);
    expect(await runScript(redisB, script, [], ['again'])).toBe('again');
  });
});

describe('key layout', () => {
  it('puts every key of a tenant under its {tenantId} hash tag', async () => {
    const t = await seeded(newTenant());
    const requestId = newRequest();
    await a.admit(input(t, { requestId, requestsPerMinute: 5, tokensPerMinute: 500, budgetMicros: 10n, holdMicros: 1n }));
    await a.admit(input(t, { holdMicros: 1n, holdTtlMs: 10 }));
    await sleep(20);
    await a.budgetState(t, month); // sweeps the expired hold: the swept tombstone below
    await a.settle({ tenantId: t, requestId: newRequest(), month, actualMicros: 1n, actualTokens: 1, tokensEstimate: 1 });
    const keys = (await inspect.keys(`*${t}*`)).sort();
    expect(keys.map((k) => k.replace(t, 'T').replace(/settled:[01]$/, 'settled:S'))).toEqual([
      'lg:{T}:v2:budget:2026-11',
      'lg:{T}:v2:hold-amounts:2026-11',
      'lg:{T}:v2:holds:2026-11',
      'lg:{T}:v2:inflight',
      'lg:{T}:v2:settled:S',
      'lg:{T}:v2:swept:2026-11',
      'lg:{T}:v2:win:rpm',
      'lg:{T}:v2:win:tpm',
    ]);
  });

  it('honours keyPrefix', async () => {
    const t = newTenant();
    const custom = makeLimiter(redisA, { keyPrefix: 'gw' });
    await custom.reseed({ tenantId: t, month, spentMicros: 0n, holds: [] });
    expect(await inspect.keys(`*${t}*`)).toEqual([`gw:{${t}}:v2:budget:${month}`]);
    expect((await a.admit(input(t))).allowed).toBe(false); // the 'lg' month is still missing
  });
});
