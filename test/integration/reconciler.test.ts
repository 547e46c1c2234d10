import { createPrisma } from '../../src/infra/prisma';
import { createLogger } from '../../src/infra/logger';
import { makeLimiter } from '../../src/limits';
import { makeReconciler } from '../../src/accounting/reconciler';
import { monthOf } from '../../src/accounting/period';
import { TEST_DATABASE_URL } from '../support/env';
import { testRedis } from '../support/test-redis';
import { uniqueName } from '../support/app';

const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = testRedis();
const limiter = makeLimiter(redis);
afterAll(async () => {
  await db.$disconnect();
  redis.disconnect();
});

test('the reconciler reports a lasting difference between Redis spent and the ledger, and nothing when they agree', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('recon') } });
  const month = monthOf(new Date());
  await db.ledgerEntry.create({
    data: {
      requestId: crypto.randomUUID(),
      tenantId: tenant.id,
      profile: 'chat_default',
      region: 'US_EAST',
      plannedModel: 'glm-5',
      model: 'glm-5',
      maxTokens: 150,
      priceSnapshot: {},
      costMicros: 288n,
      state: 'SETTLED',
      outcome: 'COMPLETED',
      usageSource: 'PROVIDER',
      leaseExpiresAt: new Date(),
      endedAt: new Date(),
    },
  });
  await limiter.reseed({ tenantId: tenant.id, month, spentMicros: 288n, holds: [] });
  const reconciler = makeReconciler({ db, limiter, logger: createLogger('silent'), confirmMs: 10 });
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([]);

  await redis.hincrby(`lg:{${tenant.id}}:budget:${month}`, 'spent', 12);
  expect((await reconciler.reconcileOnce()).filter((d) => d.tenantId === tenant.id)).toEqual([
    { tenantId: tenant.id, month, redisSpentMicros: 300n, ledgerSpentMicros: 288n },
  ]);
});
