import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { formatUsd } from '../../src/accounting/money';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY } from '../support/app';
import { until } from '../support/wait';

/**
 * Per-key limits end to end on two instances over real Postgres, Redis and the simulator: a key's budget holds
 * exactly under concurrency even when Redis loses the month mid-run (it is reseeded from the ledger, per key), its
 * windows refuse naming the key, and apiKeys shows what each key spent this month.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
const redis = new Redis(TEST_REDIS_URL);
let sim: Simulator;
let a: App;
let b: App;

beforeAll(async () => {
  sim = await startSim(0.05);
  [a, b] = await Promise.all([startApp({}, sim), startApp({}, sim)]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

const SET_KEY_LIMITS = `mutation($id: ID!, $b: Usd, $r: Int, $t: Int) {
  setApiKeyLimits(id: $id, monthlyBudgetUsd: $b, requestsPerMinute: $r, tokensPerMinute: $t) { id monthlyBudgetUsd requestsPerMinute tokensPerMinute }
}`;
const API_KEYS = `query($t: ID) { apiKeys(tenantId: $t) { id name spentThisMonthUsd monthlyBudgetUsd } }`;

async function newKey(tenantId: string): Promise<{ id: string; key: string }> {
  const d = await gqlOk<any>(a.url, TEST_ADMIN_KEY, `mutation($t: ID!) { createApiKey(tenantId: $t) { id key } }`, { t: tenantId });
  return d.createApiKey;
}

const keySettled = async (apiKeyId: string) =>
  (await db.ledgerEntry.aggregate({ where: { apiKeyId, state: 'SETTLED' }, _sum: { costMicros: true } }))._sum.costMicros ?? 0n;

test('a key budget is exact under 30 concurrent chats on two instances, with the month state lost mid-run; the tenant and its other key go on', async () => {
  const t = await createTenant(a.url, {}); // the tenant itself has no budget: the key's own is the only one
  await gqlOk(a.url, t.key, CHAT, hello());
  const first = (await db.ledgerEntry.findFirst({ where: { tenantId: t.id } }))!;
  const budget = first.costMicros + (first.holdMicros * 5n) / 2n; // two and a half worst cases left
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_KEY_LIMITS, { id: t.keyId, b: formatUsd(budget) });
  const other = await newKey(t.id);

  const month = monthOf(new Date());
  const runs = [
    ...Array.from({ length: 30 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello())),
    ...Array.from({ length: 4 }, (_, i) => gql((i % 2 ? a : b).url, other.key, CHAT, hello())),
  ];
  // Redis loses the month while requests run: the next admission rebuilds it, per key, from the ledger.
  await until(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id } })) >= 3, 'requests under way');
  await redis.del(`lg:{${t.id}}:v2:budget:${month}`, `lg:{${t.id}}:v2:holds:${month}`, `lg:{${t.id}}:v2:hold-amounts:${month}`);
  const results = await Promise.all(runs);

  const mine = results.slice(0, 30);
  const refused = mine.filter((r) => r.errors);
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) {
    expect(r.errors![0]!.extensions).toMatchObject({ code: 'BUDGET_EXCEEDED', scope: 'KEY' });
    expect(r.errors![0]!.message).toContain("this API key's own monthly budget");
  }
  expect(results.slice(30).every((r) => !r.errors)).toBe(true);
  await until(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })) === 0, 'every request settled');
  expect(await keySettled(t.keyId)).toBeLessThanOrEqual(budget);
  // No refused request left a row: the key's rows are the first chat plus the admitted ones.
  expect(await db.ledgerEntry.count({ where: { apiKeyId: t.keyId } })).toBe(1 + mine.length - refused.length);

  // The gate converges to the ledger, per key (a read reseeds the month if no admission did).
  await gqlOk(a.url, other.key, `{ me { id } }`);
  await until(async () => {
    const [spent, held] = await redis.hmget(`lg:{${t.id}}:v2:budget:${month}`, `k:${t.keyId}:s`, `k:${t.keyId}:h`);
    return BigInt(spent ?? '-1') === (await keySettled(t.keyId)) && (held ?? '0') === '0';
  }, "the gate's key spent equals the ledger's");

  const keys = (await gqlOk<any>(b.url, TEST_ADMIN_KEY, API_KEYS, { t: t.id })).apiKeys as any[];
  const view = keys.find((k) => k.id === t.keyId);
  expect(view).toMatchObject({ spentThisMonthUsd: formatUsd(await keySettled(t.keyId)), monthlyBudgetUsd: formatUsd(budget) });
  expect(keys.find((k) => k.id === other.id)).toMatchObject({ spentThisMonthUsd: formatUsd(await keySettled(other.id)), monthlyBudgetUsd: null });
  // A tenant key sees its own tenant's keys and spend.
  expect(((await gqlOk<any>(a.url, other.key, API_KEYS, {})).apiKeys as any[]).map((k) => k.id).sort()).toEqual([t.keyId, other.id].sort());
});

test('key windows: rpm 2 on two instances refuses the third naming the key, another key of the tenant is not slowed; null removes the limit on the next request', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 100 });
  const other = await newKey(t.id);
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_KEY_LIMITS, { id: t.keyId, r: 2 });
  expect((await gql(a.url, t.key, CHAT, hello())).errors).toBeUndefined();
  expect((await gql(b.url, t.key, CHAT, hello())).errors).toBeUndefined();
  const third = await gql(a.url, t.key, CHAT, hello());
  expect(third.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'REQUESTS_PER_MINUTE', scope: 'KEY' });
  expect(third.errors![0]!.message).toContain("this API key's own requests per minute");
  expect((await gql(b.url, other.key, CHAT, hello())).errors).toBeUndefined();
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_KEY_LIMITS, { id: t.keyId, r: null });
  expect((await gql(b.url, t.key, CHAT, hello())).errors).toBeUndefined();
});

test('key tpm: a request larger than the key limit is refused as never fitting, naming the key; nothing is written', async () => {
  const t = await createTenant(a.url, {});
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_KEY_LIMITS, { id: t.keyId, t: 100 });
  const r = await gql(b.url, t.key, CHAT, hello('chat_default', { maxTokens: 150 }));
  expect(r.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'TOKENS_PER_MINUTE', scope: 'KEY' });
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
  expect((await gql(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 50 }))).errors).toBeUndefined();
});
