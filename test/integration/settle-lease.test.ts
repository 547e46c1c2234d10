import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT_STREAM, createTenant, hello, startApp, startSim, testEnv, wsClient } from '../support/app';
import { skewedClock, startTcpProxy, until, type TcpProxy } from '../support/faults';
import { startServerProcess, type ServerProcess } from '../support/server-process';

/**
 * Issue 11 item 3: a live request whose instance lost Postgres past its lease is reaped elsewhere; it then stops its
 * upstream at once and its late tokens amend the same row (the gate gets the difference once). Leases are judged by
 * Postgres time only, so a skewed app clock reaps nothing that is alive.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
const apps: App[] = [];
const procs: ServerProcess[] = [];
let proxy: TcpProxy | null = null;
const simStats = async () => (await (await fetch(`${new URL(sim.url).origin}/__sim/stats`)).json()) as { abortedByClient: number; openStreams: number };

beforeAll(async () => {
  sim = await startSim(1); // deepseek-v4-pro at its real 30 tokens/s: a 400-token answer runs ~13 s
});
afterEach(async () => {
  proxy?.resume();
  for (const p of procs.splice(0)) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
  await Promise.all(apps.splice(0).map((a) => a.stop()));
  await proxy?.close();
  proxy = null;
});
afterAll(async () => {
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

test('Postgres paused past LEASE_MS while a stream runs: another instance reaps it; on resume the stream stops its upstream at once and its late tokens amend the row, applied to the gate once', async () => {
  const pg = new URL(TEST_DATABASE_URL);
  proxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  const a = await startApp({ DATABASE_URL: proxy.url(TEST_DATABASE_URL), LEASE_MS: '1500', CHECKPOINT_INTERVAL_MS: '200', REAPER_INTERVAL_MS: '600000' }, sim);
  const b = await startApp({}, sim, { background: false });
  apps.push(a, b);
  const t = await createTenant(b.url, { monthlyBudgetUsd: '5' });
  const abortedBefore = (await simStats()).abortedByClient;

  const ws = wsClient(a.url, t.key);
  const events: any[] = [];
  let requestId = '';
  const p = proxy;
  const ended = new Promise<{ error: unknown }>((resolve) => {
    ws.subscribe(
      { query: CHAT_STREAM, variables: hello('long_form', { maxTokens: 400 }) },
      {
        next: (v) => {
          const ev = (v.data as any)?.chatStream;
          if (!ev) return resolve({ error: v.errors });
          requestId = ev.requestId;
          events.push(ev);
          if (events.length === 10) p.pause(); // instance A loses Postgres mid-stream
        },
        error: (error) => resolve({ error }),
        complete: () => resolve({ error: null }),
      },
    );
  });
  await until(() => events.length >= 10, 'the stream to get going');

  // Instance B's reaper settles the row once the lease (renewed by Postgres time) has run out.
  await until(
    async () => (await b.reapOnce()) > 0 || (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'SETTLED' } })) === 1,
    'the reaper',
    10_000,
    200,
  );
  const reaped = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });
  expect(reaped).toMatchObject({ state: 'SETTLED', outcome: 'UPSTREAM_INTERRUPTED', settleVersion: 1 });
  // The stream goes on delivering while A cannot reach Postgres: these tokens come after the reaper's settlement.
  await until(() => events.length >= reaped.completionTokens + 15, 'late tokens');

  const resumedAt = Date.now();
  proxy.resume();
  expect(await ended).toEqual({ error: null });
  const stoppedMs = Date.now() - resumedAt;
  expect(stoppedMs).toBeLessThan(2_000); // at once: the next lease renewal finds the row settled
  const done = events.at(-1);
  expect(done).toMatchObject({ done: true, outcome: 'UPSTREAM_INTERRUPTED' });
  const delivered = events.filter((e) => !e.done).length;
  expect(delivered).toBeLessThan(400);
  await until(async () => (await simStats()).abortedByClient > abortedBefore, 'the upstream call to be aborted', 2_000);

  // One row, amended with the late tokens: never lost, never double.
  const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  expect(row.settleVersion).toBe(2);
  expect(row.completionTokens).toBe(done.usage.completionTokens);
  expect(row.completionTokens).toBeGreaterThanOrEqual(delivered);
  expect(row.amendedMicros).toBeGreaterThan(0n);
  expect(row.costMicros).toBe(reaped.costMicros + row.amendedMicros);
  expect(row.costMicros).toBe((BigInt(row.completionTokens) * 780_000n + 999_999n) / 1_000_000n);

  // The gate gets the first settlement and the difference, each once. (Relies on the limiter adding a settle for an
  // id that never had a hold, '<requestId>:v2', once: the gate engineer's settle.lua of this wave.)
  await until(
    async () => (await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } })).gatePendingSince === null,
    'the amendment to reach the gate',
    5_000,
  );
  expect((await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } })).gateAppliedVersion).toBe(2);
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: row.costMicros, heldMicros: 0n });
  await b.applyGatePending();
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: row.costMicros, heldMicros: 0n });
}, 60_000);

test('skewed app clocks reap nothing alive: an instance an hour behind writes leases that hold, an instance an hour ahead reaps nothing', async () => {
  const [behind, ahead] = await Promise.all([
    startServerProcess(
      testEnv({ LOG_LEVEL: 'info', LEASE_MS: '3000', CHECKPOINT_INTERVAL_MS: '200', REAPER_INTERVAL_MS: '600000', ...skewedClock(-3600_000).env }, sim),
      {
        execArgv: skewedClock(-3600_000).execArgv,
      },
    ),
    startServerProcess(testEnv({ LOG_LEVEL: 'info', REAPER_INTERVAL_MS: '100', ...skewedClock(3600_000).env }, sim), {
      execArgv: skewedClock(3600_000).execArgv,
    }),
  ]);
  procs.push(behind, ahead);
  const b = await startApp({ LEASE_MS: '3000', CHECKPOINT_INTERVAL_MS: '200' }, sim);
  apps.push(b);
  const t = await createTenant(b.url, { monthlyBudgetUsd: '5' });

  // One stream on the instance whose clock is behind, one on an honest instance, while the one ahead reaps.
  const onBehind = wsClient(behind.url, t.key);
  const onHonest = wsClient(b.url, t.key);
  const run = (c: ReturnType<typeof wsClient>) =>
    new Promise<any[]>((resolve, reject) => {
      const evs: any[] = [];
      c.subscribe(
        { query: CHAT_STREAM, variables: hello('long_form', { maxTokens: 60 }) },
        { next: (v) => evs.push((v.data as any)?.chatStream), error: reject, complete: () => resolve(evs) },
      );
    });
  const streams = Promise.all([run(onBehind), run(onHonest)]);
  // While both run (about 2.5 s), the honest instance's reaper looks too: nothing is expired by Postgres time.
  await until(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })) === 2, 'both requests to be held');
  expect(await b.reapOnce()).toBe(0);
  const results = await streams;
  for (const evs of results) expect(evs.at(-1)).toMatchObject({ done: true, outcome: 'COMPLETED' });
  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
  expect(rows.map((r) => r.outcome)).toEqual(['COMPLETED', 'COMPLETED']);
  expect(ahead.logs.some((j) => j.msg === 'reaper settled an orphaned request')).toBe(false);
  void onBehind.dispose();
  void onHonest.dispose();
}, 60_000);
