import { Cluster } from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY } from '../support/app';
import { startRedisCluster, type TestCluster } from '../support/redis-cluster';

/**
 * The key accounting scenarios on a real Redis Cluster (3 masters, 3 replicas), two gateway instances on it:
 * budgets exact under concurrency, rate limits exact, state rebuilt from the ledger after every master is flushed.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
let cluster: TestCluster;
let inspect: Cluster;
let sim: Simulator;
let a: App;
let b: App;

beforeAll(async () => {
  [cluster, sim] = await Promise.all([startRedisCluster(), startSim(0)]);
  inspect = new Cluster(cluster.nodes.slice(0, 1));
  const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_URL: 'redis://127.0.0.1:1/0' };
  [a, b] = await Promise.all([startApp(env, sim), startApp(env, sim)]);
}, 60_000);
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  inspect?.disconnect();
  await Promise.all([sim?.close(), cluster?.stop(), db.$disconnect()]);
});

const limiter = () => makeLimiter(inspect);
async function ledgerSum(tenantId: string) {
  const r = await db.ledgerEntry.aggregate({ where: { tenantId }, _sum: { costMicros: true }, _count: true });
  return { sum: r._sum.costMicros ?? 0n, count: r._count };
}
async function override(tenantId: string, model: string) {
  await gqlOk(
    a.url,
    TEST_ADMIN_KEY,
    `mutation($t: ID!, $m: String!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: $m, fallbacks: []) { model } }`,
    { t: tenantId, m: model },
  );
}
const flushAllMasters = async () => {
  await Promise.all(inspect.nodes('master').map((m) => m.flushall()));
};

test("the gate really runs on the cluster: a tenant's keys live on the master that owns its hash-tag slot, and nowhere else", async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '1' });
  await gqlOk(a.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
  const owner = (inspect.slots as unknown as string[][])[Number(await inspect.cluster('KEYSLOT', `{${t.id}}`))]![0];
  const holders = [];
  for (const m of inspect.nodes('master')) if ((await m.keys(`lg:{${t.id}}:*`)).length) holders.push(`${m.options.host}:${m.options.port}`);
  expect(holders).toEqual([owner]);
  expect(inspect.nodes('master')).toHaveLength(3);
});

test('budget $0.001 on glm-5 at 150 tokens: of 200 concurrent chats on two instances exactly 3 succeed, 864 micro-dollars, no hold left', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '0.001' });
  await override(t.id, 'glm-5');
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello('chat_default', { maxTokens: 150 }))));
  expect(results.filter((r) => !r.errors)).toHaveLength(3);
  expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'BUDGET_EXCEEDED')).toHaveLength(197);
  expect(await ledgerSum(t.id)).toEqual({ sum: 864n, count: 3 });
  expect(await limiter().budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: 864n, heldMicros: 0n });
});

test('10 requests a minute across two instances: 30 concurrent chats, exactly 10 succeed, 20 are RATE_LIMITED', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 10 });
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))));
  expect(results.filter((r) => !r.errors)).toHaveLength(10);
  expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'RATE_LIMITED')).toHaveLength(20);
  expect((await ledgerSum(t.id)).count).toBe(10);
});

test('every master flushed: budget, holds and the last minute of rate usage come back from the ledger, nothing counted twice', async () => {
  const rich = await createTenant(a.url, { monthlyBudgetUsd: '1' });
  const limited = await createTenant(a.url, { requestsPerMinute: 5 });
  await override(rich.id, 'glm-5');
  for (let i = 0; i < 4; i++) await gqlOk((i % 2 ? a : b).url, rich.key, CHAT, hello('chat_default', { maxTokens: 50 }));
  for (let i = 0; i < 5; i++) await gqlOk((i % 2 ? a : b).url, limited.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
  await flushAllMasters();
  expect(await limiter().budgetState(rich.id, monthOf(new Date()))).toBeNull();
  // No fresh burst after the flush: the ledger's last minute still counts.
  const r = await gql(b.url, limited.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
  expect(r.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  await gqlOk(a.url, rich.key, CHAT, hello('chat_default', { maxTokens: 50 }));
  const { sum, count } = await ledgerSum(rich.id);
  expect(count).toBe(5);
  expect(await limiter().budgetState(rich.id, monthOf(new Date()))).toEqual({ spentMicros: sum, heldMicros: 0n });
});

test('readiness pings every master', async () => {
  const res = await fetch(a.url.replace('/graphql', '/readyz'));
  expect(res.status).toBe(200);
});

test('start-up fails fast, naming the seed nodes, when no cluster node answers', async () => {
  const started = Date.now();
  await expect(startApp({ REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' }, sim)).rejects.toThrow(
    /cannot reach Redis at the Redis Cluster seeded by 127\.0\.0\.1:1,127\.0\.0\.1:2/,
  );
  expect(Date.now() - started).toBeLessThan(10_000);
});
