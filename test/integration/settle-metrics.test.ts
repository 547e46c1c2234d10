import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { startApp, startSim, uniqueName } from '../support/app';
import { refuseRedisWrites, until } from '../support/faults';

/** Issue 11 item 16: drift, the oldest unapplied settlement and reaper settlements are visible in /metrics. */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
let app: App;
let restore: (() => Promise<void>) | null = null;

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim, { background: false });
});
afterAll(async () => {
  await restore?.();
  await app?.stop();
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} not in /metrics`);
  return Number(line.split(' ')[1]);
}

const row = (tenantId: string, data: Record<string, unknown>) =>
  db.ledgerEntry.create({
    data: {
      requestId: crypto.randomUUID(),
      tenantId,
      profile: 'chat_default',
      region: 'US_EAST',
      plannedModel: 'glm-5',
      maxTokens: 150,
      priceSnapshot: { 'glm-5': { input: '600000', output: '1920000' } },
      leaseExpiresAt: new Date(),
      ...data,
    },
  });

test('reaper settlements are counted', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('metrics') } });
  const before = await metric('gateway_reaper_settlements_total');
  await row(tenant.id, { leaseExpiresAt: new Date(Date.now() - 60_000), checkpointTokens: 10, checkpointModel: 'glm-5' });
  expect(await app.reapOnce()).toBeGreaterThanOrEqual(1);
  expect(await metric('gateway_reaper_settlements_total')).toBeGreaterThanOrEqual(before + 1);
});

test('the age of the oldest settlement not yet applied to the gate rises while Redis refuses writes and falls to 0 once it lands', async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('metrics') } });
  const r = await row(tenant.id, {
    state: 'SETTLED',
    outcome: 'COMPLETED',
    model: 'glm-5',
    costMicros: 77n,
    settleVersion: 1,
    gatePendingSince: new Date(Date.now() - 30_000),
    endedAt: new Date(),
  });
  // The gate still holds the request, as when Redis refused its settlement.
  const hold = { requestId: r.requestId, holdMicros: 100n, expiresAtMs: Date.now() + 600_000, admittedAtMs: Date.now() };
  await limiter.reseed({ tenantId: tenant.id, month: monthOf(new Date()), spentMicros: 0n, holds: [hold] });
  restore = await refuseRedisWrites(redis);
  await app.applyGatePending().catch(() => undefined); // Redis refuses: the pass stops, the row stays pending
  expect(await metric('gateway_gate_oldest_pending_settlement_seconds')).toBeGreaterThanOrEqual(29);
  await restore();
  restore = null;
  // Other suites share this database: a pass may also meet their rows settling right now, so pass until none is left.
  await until(
    async () => {
      await app.applyGatePending();
      return (await metric('gateway_gate_oldest_pending_settlement_seconds')) === 0;
    },
    'no settlement left pending',
    10_000,
    100,
  );
  expect(await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: r.requestId } })).toMatchObject({ gatePendingSince: null, gateAppliedVersion: 1 });
  expect(await limiter.budgetState(tenant.id, monthOf(new Date()))).toEqual({ spentMicros: 77n, heldMicros: 0n });
});

test("the reconciler's drift shows in gauges and its repairs in a counter; after the repair the drift is 0", async () => {
  const tenant = await db.tenant.create({ data: { name: uniqueName('metrics') } });
  await row(tenant.id, {
    state: 'SETTLED',
    outcome: 'COMPLETED',
    model: 'glm-5',
    costMicros: 500n,
    settleVersion: 1,
    gateAppliedVersion: 1,
    endedAt: new Date(),
  });
  await limiter.reseed({ tenantId: tenant.id, month: monthOf(new Date()), spentMicros: 350n, holds: [] }); // 150 lost
  const repairsBefore = await metric('gateway_budget_repairs_total');
  const drifts = await app.reconcileOnce();
  expect(drifts.find((d) => d.tenantId === tenant.id)).toMatchObject({ redisSpentMicros: 350n, ledgerSpentMicros: 500n, repaired: true });
  expect(await metric('gateway_budget_drift_micros')).toBeGreaterThanOrEqual(150);
  expect(await metric('gateway_budget_drift_tenants')).toBeGreaterThanOrEqual(1);
  expect(await metric('gateway_budget_repairs_total')).toBeGreaterThanOrEqual(repairsBefore + 1);
  expect((await limiter.budgetState(tenant.id, monthOf(new Date())))!.spentMicros).toBe(500n);
  expect((await app.reconcileOnce()).find((d) => d.tenantId === tenant.id)).toBeUndefined();
});
