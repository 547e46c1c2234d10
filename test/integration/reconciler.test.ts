import { createPrisma } from '../../src/infra/prisma';
import { createLogger } from '../../src/infra/logger';
import { makeLimiter } from '../../src/limits';
import { limitKeys } from '../../src/limits/keys';
import { makeGateRepair } from '../../src/limits/repair';
import { makeReconciler } from '../../src/accounting/reconciler';
import { makeGateLedger } from '../../src/accounting/gate-ledger';
import { makeKeyReconciler } from '../../src/accounting/key-reconciler';
import { monthOf } from '../../src/accounting/period';
import { TEST_DATABASE_URL } from '../support/env';
import { testRedis } from '../support/test-redis';
import { uniqueName } from '../support/app';

const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = testRedis();
const limiter = makeLimiter(redis);
const repair = makeGateRepair(redis);
const gateLedger = makeGateLedger(db);
afterAll(async () => {
  await db.$disconnect();
  redis.disconnect();
});

async function settledRow(tenantId: string, costMicros: bigint, pending = false, apiKeyId: string | null = null) {
  await db.ledgerEntry.create({
    data: {
      requestId: crypto.randomUUID(),
      tenantId,
      apiKeyId,
      profile: 'chat_default',
      region: 'US_EAST',
      plannedModel: 'glm-5',
      model: 'glm-5',
      maxTokens: 150,
      priceSnapshot: {},
      costMicros,
      state: 'SETTLED',
      settleVersion: 1,
      gateAppliedVersion: pending ? 0 : 1,
      gatePendingSince: pending ? new Date() : null,
      outcome: 'COMPLETED',
      usageSource: 'PROVIDER',
      leaseExpiresAt: new Date(),
      endedAt: new Date(),
    },
  });
}

const budget = (tenantId: string) => limitKeys().month(tenantId, monthOf(new Date())).budget;

test('lasting drift is reported and repaired: the gate spent is rewritten from the ledger, and nothing is done when they agree', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('recon') } });
  const month = monthOf(new Date());
  await settledRow(tenant.id, 288n);
  await limiter.reseed({ tenantId: tenant.id, month, spentMicros: 288n, holds: [] });
  const passes: { tenants: number; driftMicros: bigint; repaired: number }[] = [];
  const reconciler = makeReconciler({ db, limiter, gateLedger, repair, logger: createLogger('silent'), confirmMs: 10, onPass: (p) => passes.push(p) });
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([]);

  // A double count (e.g. a settlement applied twice through a failover) and a lost one are both repaired.
  await redis.hincrby(budget(tenant.id), 'spent', 12);
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([
    { tenantId: tenant.id, month, redisSpentMicros: 300n, ledgerSpentMicros: 288n, pending: 0, repaired: true },
  ]);
  expect(passes.at(-1)!.driftMicros).toBeGreaterThanOrEqual(12n);
  expect(await limiter.budgetState(tenant.id, month)).toEqual({ spentMicros: 288n, heldMicros: 0n });

  await redis.hincrby(budget(tenant.id), 'spent', -100);
  await reconciler.reconcileOnce();
  expect(await limiter.budgetState(tenant.id, month)).toEqual({ spentMicros: 288n, heldMicros: 0n });
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([]);
});

test('a gap with settlements still pending for the gate is left to the gate applier, not overwritten', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('recon') } });
  const month = monthOf(new Date());
  await settledRow(tenant.id, 100n);
  await limiter.reseed({ tenantId: tenant.id, month, spentMicros: 100n, holds: [] });
  await settledRow(tenant.id, 50n, true); // in Postgres, not yet in Redis
  const reconciler = makeReconciler({ db, limiter, gateLedger, repair, logger: createLogger('silent'), confirmMs: 10 });
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([
    { tenantId: tenant.id, month, redisSpentMicros: 100n, ledgerSpentMicros: 150n, pending: 1, repaired: false },
  ]);
  expect((await limiter.budgetState(tenant.id, month))!.spentMicros).toBe(100n);
});

test('the repair is a compare-and-set: a settlement landing between the observation and the write is not lost', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('recon') } });
  const month = monthOf(new Date());
  await limiter.reseed({ tenantId: tenant.id, month, spentMicros: 500n, holds: [] });
  await redis.hincrby(budget(tenant.id), 'spent', 7); // moved after the caller observed 500
  expect(await repair.repairSpent({ tenantId: tenant.id, month, observedMicros: 500n, ledgerMicros: 400n })).toEqual({ repaired: false });
  expect((await limiter.budgetState(tenant.id, month))!.spentMicros).toBe(507n);
  expect(await repair.repairSpent({ tenantId: tenant.id, month, observedMicros: 507n, ledgerMicros: 400n })).toEqual({ repaired: true });
  expect((await limiter.budgetState(tenant.id, month))!.spentMicros).toBe(400n);
  // A missing month is never created by a repair (the next admission reseeds it).
  expect(await repair.repairSpent({ tenantId: tenant.id, month: '2001-01', observedMicros: 0n, ledgerMicros: 1n })).toEqual({ repaired: false });
});

test("API keys' spent drifts are repaired like the tenant's: lasting drift rewritten under a compare-and-set, a pending gap left to the applier", async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('recon') } });
  const [k1, k2] = await Promise.all(
    ['a', 'b'].map((p) => db.apiKey.create({ data: { tenantId: tenant.id, hash: `${p}-${crypto.randomUUID()}`, prefix: p } })),
  );
  const month = monthOf(new Date());
  await settledRow(tenant.id, 300n, false, k1!.id);
  await settledRow(tenant.id, 200n, false, k2!.id);
  await limiter.reseed({
    tenantId: tenant.id,
    month,
    spentMicros: 500n,
    holds: [],
    apiKeys: [
      { apiKeyId: k1!.id, spentMicros: 300n, requestsLastMinute: 0, tokensLastMinute: 0 },
      { apiKeyId: k2!.id, spentMicros: 200n, requestsLastMinute: 0, tokensLastMinute: 0 },
    ],
  });
  const keys = makeKeyReconciler({ db, gateLedger, repair, logger: createLogger('silent'), confirmMs: 10 });
  const mine = async () => (await keys.reconcileKeys(month)).filter((d) => d.tenantId === tenant.id);
  expect(await mine()).toEqual([]);

  // k1 counted twice in the gate (the tenant's spent is right): only the key's field is rewritten.
  await redis.hincrby(budget(tenant.id), `k:${k1!.id}:s`, 40);
  await settledRow(tenant.id, 25n, true, k2!.id); // k2: in Postgres, not yet in Redis
  const drifts = await mine();
  expect(drifts).toHaveLength(2);
  expect(drifts).toEqual(
    expect.arrayContaining([
      { tenantId: tenant.id, apiKeyId: k1!.id, month, redisSpentMicros: 340n, ledgerSpentMicros: 300n, pending: 0, repaired: true },
      { tenantId: tenant.id, apiKeyId: k2!.id, month, redisSpentMicros: 200n, ledgerSpentMicros: 225n, pending: 1, repaired: false },
    ]),
  );
  expect(await repair.keySpent({ tenantId: tenant.id, month })).toEqual(
    new Map([
      [k1!.id, 300n],
      [k2!.id, 200n],
    ]),
  );

  // Compare-and-set: a key settlement landing after the observation is not lost.
  await redis.hincrby(budget(tenant.id), `k:${k1!.id}:s`, 7);
  expect(await repair.repairSpent({ tenantId: tenant.id, month, apiKeyId: k1!.id, observedMicros: 300n, ledgerMicros: 300n })).toEqual({ repaired: false });
  expect((await repair.keySpent({ tenantId: tenant.id, month }))!.get(k1!.id)).toBe(307n);
  expect(await repair.keySpent({ tenantId: tenant.id, month: '2001-01' })).toBeNull();
});
