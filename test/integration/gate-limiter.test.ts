import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { makeLimiter, type AdmitInput, type Limiter } from '../../src/limits';
import { TEST_REDIS_URL } from '../support/env';
import { admitInput, seedTenant } from '../support/limiter-inputs';

/**
 * The gate's v2 state on real Redis, two clients standing for two instances, with the limiter's test clock offset
 * standing in for minutes and hours passing: settled markers stay bounded, in-flight slots free themselves, and
 * token corrections land where the window can see them.
 */
const HOUR = 3_600_000;
let inspect: Redis;
let redisA: Redis;
let redisB: Redis;
let a: Limiter;
let b: Limiter;
let clockOffset = 0;
const clockOffsetMs = () => clockOffset;
const month = '2026-11';

beforeAll(() => {
  inspect = new Redis(TEST_REDIS_URL);
  redisA = new Redis(TEST_REDIS_URL);
  redisB = new Redis(TEST_REDIS_URL);
  a = makeLimiter(redisA, { clockOffsetMs });
  b = makeLimiter(redisB, { clockOffsetMs });
});
beforeEach(() => {
  clockOffset = 0;
});
afterAll(async () => {
  await Promise.all([inspect.quit(), redisA.quit(), redisB.quit()]);
});

const newTenant = () => `t-${randomUUID()}`;
const input = (tenantId: string, over: Partial<AdmitInput> = {}): AdmitInput => admitInput(tenantId, month, over);
const seeded = (): Promise<string> => seedTenant(a, newTenant(), month);
const settleOf = (tenantId: string, requestId: string, actualMicros = 10n) => ({
  tenantId,
  requestId,
  month,
  actualMicros,
  actualTokens: 1,
  tokensEstimate: 1,
});

/** Moves the test clock to `ms` after the start of the next whole hour (Redis TIME based). */
async function atHourStart(ms = 1_000): Promise<number> {
  const [s, us] = await inspect.time();
  const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  clockOffset = Math.ceil(now / HOUR) * HOUR - now + ms;
  return clockOffset;
}

async function markerBytes(tenantId: string): Promise<number> {
  let total = 0;
  for (const slot of [0, 1]) total += Number((await inspect.call('MEMORY', 'USAGE', `lg:{${tenantId}}:v2:settled:${slot}`, 'SAMPLES', '0')) ?? 0);
  return total;
}

async function settleMany(l: Limiter, tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, n - i) }, () => l.settle(settleOf(tenantId, randomUUID()))));
  }
}

describe('settled markers', () => {
  it('a retry within the hour applies nothing, on either instance, and extendHold sees the request settled', async () => {
    const t = await seeded();
    const base = await atHourStart(HOUR - 1_000); // the last second of an hour: the retry lands in the next one
    const requestId = randomUUID();
    await a.admit(input(t, { requestId, holdMicros: 50n }));
    expect(await a.settle(settleOf(t, requestId, 40n))).toEqual({ applied: true });
    for (const later of [1_000, 30 * 60_000, HOUR - 1_000]) {
      clockOffset = base + later;
      expect(await b.settle(settleOf(t, requestId, 40n))).toEqual({ applied: false });
      expect(await a.extendHold({ tenantId: t, requestId, month, extraMicros: 1n, budgetMicros: null, holdTtlMs: 60_000 })).toMatchObject({
        reason: 'ALREADY_SETTLED',
      });
    }
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 40n, heldMicros: 0n });
  });

  it('memory is bounded by two hours of settlements: bytes per million requests measured, older hours dropped whole', async () => {
    const t = await seeded();
    const n = 5_000;
    await atHourStart();
    await settleMany(a, t, n);
    const perRequest = (await markerBytes(t)) / n;
    // Measured ~93 B with the default hash encoding (36-character ids); the previous format kept 193 B for 48 h.
    expect(perRequest).toBeLessThan(120);
    const base = clockOffset;
    clockOffset = base + HOUR;
    await settleMany(b, t, n);
    const twoHours = await markerBytes(t);
    for (let h = 2; h <= 4; h++) {
      clockOffset = base + h * HOUR;
      await settleMany(h % 2 ? a : b, t, n);
      // Never more than the last two hours, however long traffic runs.
      expect(await markerBytes(t)).toBeLessThanOrEqual(twoHours * 1.05);
      expect(await inspect.hlen(`lg:{${t}}:v2:settled:${h % 2}`)).toBe(n + 1); // + its '#hour' field
    }
    // Every slot expires by itself when no later settlement rotates it.
    for (const slot of [0, 1]) {
      const ttl = await inspect.pttl(`lg:{${t}}:v2:settled:${slot}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(2 * HOUR + 1_000);
    }
    console.log(`settled markers: ${perRequest.toFixed(1)} B per request, ${((perRequest * 1e6) / 2 ** 20).toFixed(0)} MiB per million`);
  });
});

describe('requests in flight', () => {
  it('caps them atomically across instances; a refusal writes nothing; settle and release free a slot', async () => {
    const t = await seeded();
    const cap = { maxConcurrentRequests: 3 };
    const inputs = Array.from({ length: 10 }, () => input(t, cap));
    const results = await Promise.all(inputs.map((i, n) => (n % 2 ? a : b).admit(i)));
    expect(results.filter((r) => r.allowed)).toHaveLength(3);
    for (const r of results.filter((r) => !r.allowed))
      expect(r).toEqual({ allowed: false, reason: 'RATE_LIMITED', limit: 'CONCURRENT_REQUESTS', scope: 'TENANT', retryAfterMs: 1000 });
    const admitted = inputs.filter((_, n) => results[n]!.allowed);
    expect(await inspect.zcard(`lg:{${t}}:v2:inflight`)).toBe(3);
    const state = async () => [await inspect.hgetall(`lg:{${t}}:v2:budget:${month}`), await inspect.zrange(`lg:{${t}}:v2:inflight`, '0', '-1', 'WITHSCORES')];
    const before = await state();
    expect((await b.admit(input(t, { ...cap, holdMicros: 5n }))).allowed).toBe(false);
    expect(await state()).toEqual(before);
    await a.settle(settleOf(t, admitted[0]!.requestId));
    expect((await b.admit(input(t, cap))).allowed).toBe(true);
    expect((await b.admit(input(t, cap))).allowed).toBe(false);
    expect(await a.release(admitted[1]!)).toEqual({ released: true });
    expect((await a.admit(input(t, cap))).allowed).toBe(true);
    // Re-admitting a request already in flight keeps its one slot.
    expect((await a.admit(admitted[2]!)).allowed).toBe(true);
  });

  it("a dead process's slot frees itself when its hold expires", async () => {
    const t = await seeded();
    const cap = { maxConcurrentRequests: 1, holdTtlMs: 5_000 };
    expect((await a.admit(input(t, cap))).allowed).toBe(true);
    expect((await b.admit(input(t, cap))).allowed).toBe(false);
    clockOffset = 5_001;
    expect((await b.admit(input(t, cap))).allowed).toBe(true);
  });

  it('a cap of 0 admits nothing and says no wait helps', async () => {
    const t = await seeded();
    expect(await a.admit(input(t, { maxConcurrentRequests: 0 }))).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'CONCURRENT_REQUESTS',
      scope: 'TENANT',
      retryAfterMs: 1000,
      exceedsLimit: true,
    });
  });
});

describe('token corrections', () => {
  it('a refund comes off the bucket of the reservation, an overage counts from now for a whole window', async () => {
    const t = await seeded();
    const tpm = { tokensPerMinute: 1_000 };
    const first = input(t, { ...tpm, tokensEstimate: 600 });
    expect((await a.admit(first)).allowed).toBe(true);
    clockOffset = 30_000;
    // Used 100 of 600: 500 come back to the first bucket; 900 fit now, 901 do not.
    await b.settle({ tenantId: t, requestId: first.requestId, month, actualMicros: 0n, actualTokens: 100, tokensEstimate: 600 });
    expect((await a.admit(input(t, { ...tpm, tokensEstimate: 901 }))).allowed).toBe(false);
    const second = input(t, { ...tpm, tokensEstimate: 900 });
    expect((await a.admit(second)).allowed).toBe(true);
    // 61 s later the first bucket has left: 900 in the window.
    clockOffset = 61_500;
    expect((await b.admit(input(t, { ...tpm, tokensEstimate: 101 }))).allowed).toBe(false);
    // The second reports 1,200 (300 over): the overage is added now and keeps the window full past the reservation.
    await a.settle({ tenantId: t, requestId: second.requestId, month, actualMicros: 0n, actualTokens: 1_200, tokensEstimate: 900 });
    clockOffset = 92_000; // the second's own bucket (30 s) has left, its overage (61.5 s) has not
    expect((await b.admit(input(t, { ...tpm, tokensEstimate: 701 }))).allowed).toBe(false);
    expect((await b.admit(input(t, { ...tpm, tokensEstimate: 700 }))).allowed).toBe(true);
  });

  it('release gives back the hold, the slot and both window takes', async () => {
    const t = await seeded();
    const limits = { requestsPerMinute: 1, tokensPerMinute: 500, maxConcurrentRequests: 1, budgetMicros: 100n, holdMicros: 100n, tokensEstimate: 500 };
    const first = input(t, limits);
    expect((await a.admit(first)).allowed).toBe(true);
    expect((await b.admit(input(t, limits))).allowed).toBe(false);
    expect(await b.release(first)).toEqual({ released: true });
    expect(await b.release(first)).toEqual({ released: false });
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 0n });
    expect((await b.admit(input(t, limits))).allowed).toBe(true);
  });
});
