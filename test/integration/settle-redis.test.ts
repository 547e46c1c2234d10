import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, CHAT_STREAM, createTenant, gqlOk, hello, startApp, startSim, wsClient } from '../support/app';
import { refuseRedisWrites, startTcpProxy, until, type TcpProxy } from '../support/faults';

/**
 * Issue 11 item 2: a settlement Redis refuses (or does not answer) is retried from the ledger until it lands,
 * survives a restart, and lands exactly once; the answer never waits for Redis.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const admin = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(admin);
let sim: Simulator;
const apps: App[] = [];
let restore: (() => Promise<void>) | null = null;
let proxy: TcpProxy | null = null;

beforeAll(async () => {
  sim = await startSim(1); // real pace: a stream runs long enough to inject the fault mid-answer
});
afterEach(async () => {
  await restore?.();
  restore = null;
  proxy?.resume();
  await Promise.all(apps.splice(0).map((a) => a.stop()));
  await proxy?.close();
  proxy = null;
});
afterAll(async () => {
  await sim?.close();
  await db.$disconnect();
  admin.disconnect();
});

const gate = (tenantId: string) => limiter.budgetState(tenantId, monthOf(new Date()));
async function ledgerSum(tenantId: string) {
  const r = await db.ledgerEntry.aggregate({ where: { tenantId, state: 'SETTLED' }, _sum: { costMicros: true } });
  return r._sum.costMicros ?? 0n;
}
async function converged(tenantId: string) {
  const [g, sum] = await Promise.all([gate(tenantId), ledgerSum(tenantId)]);
  return g !== null && g.spentMicros === sum && g.heldMicros === 0n;
}

/** Streams one chat; `onFirstDelta` injects the fault. Resolves with the done event and when it came. */
function streamWithFault(url: string, key: string, onFirstDelta: () => Promise<void> | void) {
  const ws = wsClient(url, key);
  return new Promise<{ done: any; doneAt: number; faultAt: number }>((resolve, reject) => {
    let faultAt = 0;
    let faulting: Promise<void> | null = null;
    let done: any = null;
    ws.subscribe(
      { query: CHAT_STREAM, variables: hello('chat_default', { maxTokens: 60 }) },
      {
        next: (v) => {
          const ev = (v.data as any)?.chatStream;
          if (!ev) return reject(new Error(JSON.stringify(v.errors)));
          if (!faulting) {
            faulting = Promise.resolve(onFirstDelta()).then(() => void (faultAt = Date.now()));
          }
          if (ev.done) done = ev;
        },
        error: reject,
        complete: () => {
          const doneAt = Date.now();
          void Promise.resolve(faulting).then(() => {
            void ws.dispose();
            resolve({ done, doneAt, faultAt });
          });
        },
      },
    );
  });
}

test('Redis refusing writes as a stream settles: the answer goes out, and within 15 s of Redis accepting writes again (after a restart in between) spent = ledger sum, held = 0', async () => {
  const a = await startApp({}, sim, { background: false });
  apps.push(a);
  const t = await createTenant(a.url, { monthlyBudgetUsd: '5' });
  await gqlOk(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 20 })); // seeds the gate's month
  expect(await converged(t.id)).toBe(true);

  const { done } = await streamWithFault(a.url, t.key, async () => {
    restore = await refuseRedisWrites(admin);
  });
  expect(done).toMatchObject({ done: true, outcome: 'COMPLETED' });
  expect(BigInt(done.usage.costUsd.replace('.', ''))).toBeGreaterThan(0n);

  const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: done.requestId } });
  expect(row).toMatchObject({ state: 'SETTLED', settleVersion: 1, gateAppliedVersion: 0 });
  expect(row.gatePendingSince).not.toBeNull();

  // The instance restarts while Redis still refuses: nothing of the pending settlement lives in its memory.
  await a.stop();
  apps.length = 0;
  const b = await startApp({ GATE_APPLY_INTERVAL_MS: '300' }, sim);
  apps.push(b);
  await restore!();
  restore = null;
  const tookMs = await until(() => converged(t.id), 'the gate to converge to the ledger', 15_000);
  expect(tookMs).toBeLessThan(15_000);

  // The gate has it; the row's confirmation follows in the applier's next batched UPDATE.
  const confirmed = async () => (await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: done.requestId } })).gateAppliedVersion === 1;
  await until(confirmed, "the row's gate confirmation", 15_000);
  const after = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: done.requestId } });
  expect(after).toMatchObject({ gateAppliedVersion: 1, gatePendingSince: null });
  // Exactly once: more passes on more instances change nothing.
  const spent = (await gate(t.id))!.spentMicros;
  await Promise.all([b.applyGatePending(), b.applyGatePending()]);
  expect((await gate(t.id))!.spentMicros).toBe(spent);
  expect(spent).toBe(await ledgerSum(t.id));
}, 60_000);

test('Redis hanging (connection paused) as a stream settles: the done event does not wait for it, and the settlement lands once Redis answers', async () => {
  proxy = await startTcpProxy({ host: new URL(TEST_REDIS_URL).hostname, port: Number(new URL(TEST_REDIS_URL).port || 6379) });
  const a = await startApp({ REDIS_URL: proxy.url(TEST_REDIS_URL), GATE_APPLY_INTERVAL_MS: '300' }, sim);
  apps.push(a);
  const t = await createTenant(a.url, { monthlyBudgetUsd: '5' });
  await gqlOk(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 20 }));

  let lastDeltaAt = 0;
  const p = proxy;
  const { done, doneAt } = await streamWithFault(a.url, t.key, () => {
    lastDeltaAt = Date.now();
    p.pause();
  });
  expect(done).toMatchObject({ done: true, outcome: 'COMPLETED' });
  const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: done.requestId } });
  expect(row.state).toBe('SETTLED');
  // The stream took its time; the settlement at its end waited at most a moment for the hung Redis.
  const endedAt = row.endedAt!.getTime();
  expect(doneAt - endedAt).toBeLessThan(1_500);
  expect(lastDeltaAt).toBeGreaterThan(0);
  expect(await converged(t.id)).toBe(false);

  proxy.resume();
  await until(() => converged(t.id), 'the gate to take the held settlement', 15_000);
  await until(
    async () => (await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: done.requestId } })).gatePendingSince === null,
    'the confirmation',
    5_000,
  );
}, 60_000);

test('a settlement applied to Redis whose confirmation was lost (crash before the ledger write) is re-applied as a no-op: counted once', async () => {
  const a = await startApp({}, sim, { background: false });
  apps.push(a);
  const t = await createTenant(a.url, { monthlyBudgetUsd: '5' });
  const r = await gqlOk(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 30 }));
  await until(
    async () => (await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: r.chat.requestId } })).gatePendingSince === null,
    'the confirmation',
    5_000,
  );
  expect(await converged(t.id)).toBe(true);
  // As if the process died after Redis took the settlement and before it recorded that in Postgres.
  await db.$executeRaw`UPDATE usage_ledger SET gate_applied_version = 0, gate_pending_since = now() - interval '1 minute' WHERE request_id = ${r.chat.requestId}::uuid`;
  expect(await a.applyGatePending()).toBeGreaterThanOrEqual(1);
  expect(await converged(t.id)).toBe(true);
  expect(await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: r.chat.requestId } })).toMatchObject({ gateAppliedVersion: 1, gatePendingSince: null });
}, 30_000);
