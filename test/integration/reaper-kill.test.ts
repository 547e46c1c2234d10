import type { ChildProcess } from 'node:child_process';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT_STREAM, createTenant, hello, startApp, startSim, testEnv, wsClient } from '../support/app';
import { startServerProcess } from '../support/server-process';
import { until } from '../support/faults';

/** Nothing is lost when a process dies mid-stream: a real server process is SIGKILLed with 20 streams open. */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = new Redis(TEST_REDIS_URL);
let sim: Simulator;
let survivor: App;
let child: ChildProcess | null = null;

beforeAll(async () => {
  sim = await startSim(1); // real latencies: deepseek-v4-pro streams 150 tokens over ~5 s
  survivor = await startApp({}, sim, { background: false });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await survivor?.stop();
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

test('SIGKILL with 20 streams open: after the lease expires the reaper settles all 20 from their last checkpoints', async () => {
  const t = await createTenant(survivor.url, { monthlyBudgetUsd: '10' });
  const started = await startServerProcess(testEnv({ LOG_LEVEL: 'info', LEASE_MS: '4000', CHECKPOINT_INTERVAL_MS: '200', REAPER_INTERVAL_MS: '600000' }, sim));
  child = started.proc;
  const ws = wsClient(started.url, t.key);
  const deltas = new Array<number>(20).fill(0);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('streams did not start')), 30_000);
    for (let i = 0; i < 20; i++) {
      ws.subscribe(
        { query: CHAT_STREAM, variables: hello('long_form', { maxTokens: 150 }) },
        {
          next: () => {
            deltas[i]!++;
            if (deltas.every((d) => d >= 5)) {
              clearTimeout(timer);
              resolve();
            }
          },
          error: () => undefined,
          complete: () => undefined,
        },
      );
    }
  });
  await new Promise((r) => setTimeout(r, 500)); // let a checkpoint or two land
  child.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  void Promise.resolve(ws.dispose()).catch(() => undefined);

  const held = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, orderBy: { requestId: 'asc' } });
  expect(held).toHaveLength(20);
  expect(held.every((r) => r.state === 'HELD' && r.checkpointTokens > 0)).toBe(true);
  const checkpoints = new Map(held.map((r) => [r.requestId, r.checkpointTokens]));
  // Nothing is reaped before the lease expires.
  await survivor.reapOnce();
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })).toBe(20);
  // Any live instance's reaper may take them (other suites' apps share this database); all 20 must be settled once.
  await until(
    async () => (await survivor.reapOnce(), (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })) === 0),
    'the lease to expire and the reaper to settle all 20',
    15_000,
    250,
  );

  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
  let sum = 0n;
  for (const r of rows) {
    expect(r.state).toBe('SETTLED');
    expect(r.outcome).toBe('UPSTREAM_INTERRUPTED');
    expect(r.usageSource).toBe('ESTIMATED');
    expect(r.model).toBe('deepseek-v4-pro');
    expect(r.completionTokens).toBe(checkpoints.get(r.requestId));
    // deepseek-v4-pro at $0.78 per 1M output tokens; no input price, so the prompt is recorded but not charged.
    expect(r.costMicros).toBe((BigInt(r.completionTokens) * 780_000n + 999_999n) / 1_000_000n);
    sum += r.costMicros;
  }
  const gate = await makeLimiter(redis).budgetState(t.id, monthOf(new Date()));
  expect(gate).toEqual({ spentMicros: sum, heldMicros: 0n });
}, 60_000);
