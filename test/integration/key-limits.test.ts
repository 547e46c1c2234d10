import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { makeLimiter, type AdmitInput, type AdmitResult, type ApiKeyLimits, type Limiter } from '../../src/limits';
import { testRedis } from '../support/test-redis';
import { admitInput, seedTenant } from '../support/limiter-inputs';

/**
 * Per-key limits in the fast gate against the real Redis: a key's budget and windows are decided in the same script
 * as its tenant's, with the same exactness, on two clients standing for two gateway instances.
 */

let inspect: Redis;
let redisA: Redis;
let redisB: Redis;
let a: Limiter;
let b: Limiter;
let clockOffset = 0;
const month = '2026-11';

beforeAll(async () => {
  inspect = testRedis();
  redisA = testRedis('key-limits-a');
  redisB = testRedis('key-limits-b');
  a = makeLimiter(redisA, { clockOffsetMs: () => clockOffset });
  b = makeLimiter(redisB, { clockOffsetMs: () => clockOffset });
});
beforeEach(() => {
  clockOffset = 0;
});
afterAll(async () => {
  await Promise.all([inspect.quit(), redisA.quit(), redisB.quit()]);
});

const newTenant = (): string => `t-${randomUUID()}`;
const noLimits = (id: string = randomUUID()): ApiKeyLimits => ({ id, budgetMicros: null, requestsPerMinute: null, tokensPerMinute: null });

const input = (tenantId: string, apiKey: ApiKeyLimits, over: Partial<AdmitInput> = {}): AdmitInput => admitInput(tenantId, month, { apiKey, ...over });
const seeded = (tenantId: string): Promise<string> => seedTenant(a, tenantId, month);

const allowed = (rs: AdmitResult[]) => rs.filter((r) => r.allowed).length;
const keyState = async (t: string, keyId: string) => inspect.hmget(`lg:{${t}}:v2:budget:${month}`, `k:${keyId}:s`, `k:${keyId}:h`);

describe('key budget', () => {
  it('key budget 1000, holds of 288, 200 admissions racing on two instances: exactly 3, refused naming the key; the tenant and another key go on', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), budgetMicros: 1_000n };
    const inputs = Array.from({ length: 200 }, () => input(t, key, { budgetMicros: 1_000_000n, holdMicros: 288n }));
    const results = await Promise.all(inputs.map((i, n) => (n % 2 ? a : b).admit(i)));
    expect(allowed(results)).toBe(3);
    for (const r of results.filter((r) => !r.allowed)) expect(r).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'KEY', remainingMicros: 136n });
    expect(await keyState(t, key.id)).toEqual([null, '864']);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 864n });
    // Another key of the same tenant has its own budget; the tenant's counts both.
    expect((await b.admit(input(t, noLimits(), { budgetMicros: 1_000_000n, holdMicros: 288n }))).allowed).toBe(true);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 1_152n });

    const admitted = inputs.filter((_, n) => results[n]!.allowed);
    await Promise.all(
      admitted.map((i, n) =>
        (n % 2 ? a : b).settle({ tenantId: t, requestId: i.requestId, month, actualMicros: 400n, actualTokens: 100, tokensEstimate: 100, apiKeyId: key.id }),
      ),
    );
    expect(await keyState(t, key.id)).toEqual(['1200', '0']);
    // Spent is past the key's budget (the provider reported more than held): nothing more for this key.
    expect(await a.admit(input(t, key, { holdMicros: 0n }))).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'KEY', remainingMicros: 0n });
  });

  it('the tenant budget refuses first and says so; a refusal by either writes nothing', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), budgetMicros: 500n };
    expect(await a.admit(input(t, key, { budgetMicros: 400n, holdMicros: 450n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'TENANT',
      remainingMicros: 400n,
    });
    const before = await inspect.hgetall(`lg:{${t}}:v2:budget:${month}`);
    expect(await a.admit(input(t, key, { budgetMicros: 1_000n, holdMicros: 501n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'KEY',
      remainingMicros: 500n,
    });
    expect(await inspect.hgetall(`lg:{${t}}:v2:budget:${month}`)).toEqual(before);
    expect(await inspect.hlen(`lg:{${t}}:v2:hold-amounts:${month}`)).toBe(0);
  });

  it('release, sweep and extendHold move the key share with the hold', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), budgetMicros: 1_000n };
    const i1 = input(t, key, { holdMicros: 400n, holdTtlMs: 1_000 });
    const i2 = input(t, key, { holdMicros: 300n });
    expect((await a.admit(i1)).allowed).toBe(true);
    expect((await b.admit(i2)).allowed).toBe(true);
    expect(await keyState(t, key.id)).toEqual([null, '700']);
    // The key's budget bounds an extension too, naming the key.
    const ext = { tenantId: t, requestId: i2.requestId, month, budgetMicros: null, holdTtlMs: 60_000, apiKey: { id: key.id, budgetMicros: key.budgetMicros } };
    expect(await a.extendHold({ ...ext, extraMicros: 301n })).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'KEY', remainingMicros: 300n });
    expect(await a.extendHold({ ...ext, extraMicros: 300n })).toEqual({ allowed: true, remainingMicros: null });
    expect(await keyState(t, key.id)).toEqual([null, '1000']);
    expect(await b.release(i2)).toEqual({ released: true });
    expect(await keyState(t, key.id)).toEqual([null, '400']);
    clockOffset = 2_000; // i1's hold expired: the sweep frees the key's share as well
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 0n, heldMicros: 0n }); // reading sweeps first
    expect(await keyState(t, key.id)).toEqual([null, '0']);
    // Its late settlement still counts once, for the key too (the tombstone path).
    await b.settle({ tenantId: t, requestId: i1.requestId, month, actualMicros: 123n, actualTokens: 100, tokensEstimate: 100, apiKeyId: key.id });
    expect(await keyState(t, key.id)).toEqual(['123', '0']);
  });

  it('a reseed rebuilds each key from the ledger: spent, live holds (and their markers) and the last minute', async () => {
    const t = newTenant();
    const [k1, k2] = [randomUUID(), randomUUID()];
    const now = Date.now();
    // A hold of k1 whose settlement landed while the month was missing: only its marker was written.
    const settledWhileMissing = `r-${randomUUID()}`;
    await a.settle({ tenantId: t, requestId: settledWhileMissing, month, actualMicros: 70n, actualTokens: 10, tokensEstimate: 10, apiKeyId: k1 });
    expect(
      await b.reseed({
        tenantId: t,
        month,
        spentMicros: 1_000n,
        holds: [
          { requestId: `r-${randomUUID()}`, holdMicros: 50n, expiresAtMs: now + 60_000, admittedAtMs: now, apiKeyId: k1 },
          { requestId: settledWhileMissing, holdMicros: 90n, expiresAtMs: now + 60_000, admittedAtMs: now, apiKeyId: k1 },
          { requestId: `r-${randomUUID()}`, holdMicros: 20n, expiresAtMs: now + 60_000, admittedAtMs: now, apiKeyId: null },
        ],
        apiKeys: [
          { apiKeyId: k1, spentMicros: 600n, requestsLastMinute: 2, tokensLastMinute: 300 },
          { apiKeyId: k2, spentMicros: 400n, requestsLastMinute: 0, tokensLastMinute: 0 },
        ],
      }),
    ).toEqual({ seeded: true });
    expect(await keyState(t, k1)).toEqual(['670', '50']);
    expect(await keyState(t, k2)).toEqual(['400', null]);
    expect(await a.budgetState(t, month)).toEqual({ spentMicros: 1_070n, heldMicros: 70n });
    // k1's windows carry its last minute: with rpm 3 one more fits, not two.
    const key = { id: k1, budgetMicros: null, requestsPerMinute: 3, tokensPerMinute: null };
    expect((await a.admit(input(t, key))).allowed).toBe(true);
    expect(await a.admit(input(t, key))).toMatchObject({ allowed: false, reason: 'RATE_LIMITED', limit: 'REQUESTS_PER_MINUTE', scope: 'KEY' });
  });

  it('a month written before per-key state is rebuilt like a missing one (never counted from zero)', async () => {
    const t = newTenant();
    // The previous release's v2 month: no 'kv' field, no key fields.
    await inspect.hset(`lg:{${t}}:v2:budget:${month}`, 'spent', '5', 'held', '0', 'gen', 'old');
    expect(await a.admit(input(t, noLimits()))).toEqual({ allowed: false, reason: 'NEEDS_RESEED' });
    const k = randomUUID();
    expect(
      await a.reseed({
        tenantId: t,
        month,
        spentMicros: 900n,
        holds: [],
        apiKeys: [{ apiKeyId: k, spentMicros: 900n, requestsLastMinute: 0, tokensLastMinute: 0 }],
      }),
    ).toEqual({
      seeded: true,
    });
    expect(await a.reseed({ tenantId: t, month, spentMicros: 1n, holds: [] })).toEqual({ seeded: false });
    expect(await keyState(t, k)).toEqual(['900', null]);
    expect(await a.admit(input(t, { ...noLimits(k), budgetMicros: 1_000n }, { holdMicros: 101n }))).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'KEY',
      remainingMicros: 100n,
    });
  });
});

describe('key windows', () => {
  it('key rpm 3: 20 racing admissions on two instances take exactly 3; another key and the tenant go on; a slot frees exactly at retryAfterMs', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), requestsPerMinute: 3 };
    const results = await Promise.all(Array.from({ length: 20 }, (_, n) => (n % 2 ? a : b).admit(input(t, key, { requestsPerMinute: 100 }))));
    expect(allowed(results)).toBe(3);
    const refused = results.find((r) => !r.allowed)!;
    expect(refused).toMatchObject({ allowed: false, reason: 'RATE_LIMITED', limit: 'REQUESTS_PER_MINUTE', scope: 'KEY' });
    expect((await a.admit(input(t, noLimits(), { requestsPerMinute: 100 }))).allowed).toBe(true);
    const retry = refused.allowed === false && refused.reason === 'RATE_LIMITED' ? refused.retryAfterMs : 0;
    clockOffset = retry - 1_000;
    expect((await a.admit(input(t, key))).allowed).toBe(false);
    clockOffset = retry;
    expect((await a.admit(input(t, key))).allowed).toBe(true);
  });

  it('key tpm: a request larger than the key limit never fits; the tenant window is charged only when all pass', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), tokensPerMinute: 250 };
    expect(await a.admit(input(t, key, { tokensEstimate: 251 }))).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'TOKENS_PER_MINUTE',
      scope: 'KEY',
      retryAfterMs: 60_000,
      exceedsLimit: true,
    });
    expect((await a.admit(input(t, key, { tokensPerMinute: 1_000, tokensEstimate: 200 }))).allowed).toBe(true);
    expect(await b.admit(input(t, key, { tokensPerMinute: 1_000, tokensEstimate: 100 }))).toMatchObject({
      allowed: false,
      limit: 'TOKENS_PER_MINUTE',
      scope: 'KEY',
    });
    // The refused request took nothing from the tenant's window: 800 of its 1000 are still free.
    expect((await b.admit(input(t, noLimits(), { tokensPerMinute: 1_000, tokensEstimate: 800 }))).allowed).toBe(true);
  });

  it('settlement refunds the key window where the reservation was made', async () => {
    const t = await seeded(newTenant());
    const key = { ...noLimits(), tokensPerMinute: 300 };
    const i = input(t, key, { tokensEstimate: 300 });
    expect((await a.admit(i)).allowed).toBe(true);
    expect((await a.admit(input(t, key, { tokensEstimate: 100 }))).allowed).toBe(false);
    await b.settle({ tenantId: t, requestId: i.requestId, month, actualMicros: 1n, actualTokens: 120, tokensEstimate: 300, apiKeyId: key.id });
    expect((await a.admit(input(t, key, { tokensEstimate: 180 }))).allowed).toBe(true);
  });
});

describe('bad inputs are caller bugs, refused before Redis', () => {
  it('a key id with a brace or colon would break the slot or the hold format', async () => {
    const t = await seeded(newTenant());
    await expect(a.admit(input(t, noLimits('a:b')))).rejects.toThrow(RangeError);
    await expect(a.admit(input(t, noLimits('{x}')))).rejects.toThrow(RangeError);
    await expect(a.admit(input(t, { ...noLimits(), requestsPerMinute: -1 }))).rejects.toThrow(RangeError);
    await expect(a.admit(input(t, { ...noLimits(), budgetMicros: -1n }))).rejects.toThrow(RangeError);
  });
});
