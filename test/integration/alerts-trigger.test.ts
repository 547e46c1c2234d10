import { randomUUID } from 'node:crypto';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool } from '../../src/infra/postgres';
import { makeLedger, type Settlement } from '../../src/accounting/ledger';
import { makeGateLedger } from '../../src/accounting/gate-ledger';
import { heldEntry, settlementOf } from '../support/ledger-entries';
import { TEST_DATABASE_URL } from '../support/env';

/**
 * The thresholds are decided by triggers on usage_ledger, so they must hold for every statement shape that settles
 * rows: the per-request settle, a grouped UPDATE of many rows and tenants, an amendment, a repeated settle, and a
 * settling transaction that rolls back. Real Postgres, the ledger's own statements where they exist.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
const sql = createSqlPool(TEST_DATABASE_URL, { max: 4 });
const ledger = makeLedger(db, sql);
const gateLedger = makeGateLedger(db);

afterAll(async () => {
  await db.$disconnect();
  await sql.end();
});

async function tenant(budgetMicros: bigint | null, thresholds = [50, 80, 100]): Promise<string> {
  const t = await db.tenant.create({ data: { name: `alerts-trigger-${randomUUID()}`, monthlyBudgetMicros: budgetMicros, alertThresholds: thresholds } });
  return t.id;
}

/** One start time for every row here: a settlement names its row by id and start time (the month partition). */
const STARTED_AT = new Date();

async function held(tenantId: string): Promise<string> {
  const e = heldEntry(tenantId, { plannedModel: 'm', maxTokens: 10, promptTokensEstimate: 1, prices: {}, holdMicros: 100n, startedAt: STARTED_AT });
  await ledger.hold(e);
  return e.requestId;
}

const settlement = (costMicros: bigint): Settlement => settlementOf(STARTED_AT, costMicros);

const fired = async (tenantId: string) =>
  (await db.budgetAlert.findMany({ where: { tenantId, kind: 'THRESHOLD' }, orderBy: { threshold: 'asc' } })).map((a) => [a.threshold, a.spentMicros]);
const spent = async (tenantId: string) => (await db.tenantMonthSpend.findMany({ where: { tenantId } })).map((s) => s.spentMicros);

it('a settlement that reaches a threshold puts it in the outbox with the spend, once', async () => {
  const t = await tenant(1000n);
  await ledger.settle(await held(t), settlement(400n));
  expect(await fired(t)).toEqual([]);
  await ledger.settle(await held(t), settlement(100n)); // exactly 50%
  expect(await fired(t)).toEqual([[50, 500n]]);
  await ledger.settle(await held(t), settlement(350n)); // 85%: 80 fires, 50 not again
  await ledger.settle(await held(t), settlement(10n));
  expect(await fired(t)).toEqual([
    [50, 500n],
    [80, 850n],
  ]);
  expect(await spent(t)).toEqual([860n]);
});

it('a second settle of the same row (already settled elsewhere) adds nothing', async () => {
  const t = await tenant(1000n);
  const r = await held(t);
  expect(await ledger.settle(r, settlement(600n))).toBe(true);
  expect(await ledger.settle(r, settlement(600n))).toBe(false);
  expect(await spent(t)).toEqual([600n]);
  expect(await fired(t)).toEqual([[50, 600n]]);
});

it('an amendment adds only the late cost, and can cross a threshold', async () => {
  const t = await tenant(1000n);
  const r = await held(t);
  await ledger.settle(r, settlement(700n));
  await gateLedger.amend(r, { costMicros: 900n, tokens: 50, completionTokens: 49 });
  expect(await spent(t)).toEqual([900n]);
  expect(await fired(t)).toEqual([
    [50, 700n],
    [80, 900n],
  ]);
});

it('one statement settling many rows of several tenants counts each tenant once per statement', async () => {
  const a = await tenant(1000n);
  const b = await tenant(1000n);
  const rows = [await held(a), await held(b), await held(a), await held(b), await held(a)];
  await db.$executeRaw`UPDATE usage_ledger SET state = 'SETTLED', cost_micros = 300, settle_version = 1 WHERE request_id = ANY(${rows}::uuid[])`;
  expect(await spent(a)).toEqual([900n]);
  expect(await spent(b)).toEqual([600n]);
  expect(await fired(a)).toEqual([
    [50, 900n],
    [80, 900n],
  ]);
  expect(await fired(b)).toEqual([[50, 600n]]);
});

it('a settling transaction that rolls back leaves neither spend nor alert', async () => {
  const t = await tenant(1000n);
  const r = await held(t);
  await expect(
    db.$transaction(async (tx) => {
      await tx.$executeRaw`UPDATE usage_ledger SET state = 'SETTLED', cost_micros = 999 WHERE request_id = ${r}::uuid`;
      expect(await tx.budgetAlert.count({ where: { tenantId: t } })).toBe(2); // inside: decided with the ledger change
      throw new Error('cut before commit');
    }),
  ).rejects.toThrow('cut before commit');
  expect(await spent(t)).toEqual([]);
  expect(await fired(t)).toEqual([]);
});

it('no budget: spend is kept, nothing fires; a budget set later fires what is already passed at the next settlement', async () => {
  const t = await tenant(null);
  await ledger.settle(await held(t), settlement(900n));
  expect(await fired(t)).toEqual([]);
  await db.tenant.update({ where: { id: t }, data: { monthlyBudgetMicros: 1000n } });
  await ledger.settle(await held(t), settlement(1n));
  expect(await fired(t)).toEqual([
    [50, 901n],
    [80, 901n],
  ]);
  // A higher budget does not re-arm what fired this month.
  await db.tenant.update({ where: { id: t }, data: { monthlyBudgetMicros: 10_000n } });
  await ledger.settle(await held(t), settlement(5000n));
  expect(await fired(t)).toEqual([
    [50, 901n],
    [80, 901n],
  ]);
});

it('a zero-cost settlement and a HELD row being checkpointed touch no spend row', async () => {
  const t = await tenant(1000n);
  const r = await held(t);
  await db.$executeRaw`UPDATE usage_ledger SET checkpoint_tokens = 5 WHERE request_id = ${r}::uuid`;
  await ledger.settle(r, settlement(0n));
  expect(await spent(t)).toEqual([]);
});
