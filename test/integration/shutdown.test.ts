import Redis from 'ioredis';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT_STREAM, createTenant, gql, hello, startApp, startSim, testEnv, uniqueName, wsClient } from '../support/app';
import { startServerProcess, type ServerProcess } from '../support/server-process';
import { until } from '../support/faults';
import type { App } from '../../src/app';

/** Issue 11 item 14: SIGTERM drains a real server process and loses nothing. */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
let adminApp: App;
let server: ServerProcess | null = null;

const CHAT_OUTCOME = `mutation($input: ChatInput!) { chat(input: $input) { requestId model content outcome usage { completionTokens costUsd } } }`;
const simAdmin = () => new URL(sim.url).origin;

beforeAll(async () => {
  sim = await startSim(1); // real pace, so requests are in flight when the signal comes
  adminApp = await startApp({}, sim, { background: false });
});
afterAll(async () => {
  if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL');
  await fetch(`${simAdmin()}/__sim/faults`, { method: 'DELETE' });
  await adminApp?.stop();
  await sim?.close();
  await db.$disconnect();
  redis.disconnect();
});

type StreamResult = { events: any[]; error: any; closedAt: number };
function stream(client: ReturnType<typeof wsClient>, variables: Record<string, unknown>, onEvent?: (n: number) => void): Promise<StreamResult> {
  return new Promise((resolve) => {
    const events: any[] = [];
    client.subscribe(
      { query: CHAT_STREAM, variables },
      {
        next: (v) => {
          if (v.errors) return resolve({ events, error: v.errors, closedAt: Date.now() });
          events.push((v.data as any).chatStream);
          onEvent?.(events.length);
        },
        error: (error) => resolve({ events, error, closedAt: Date.now() }),
        complete: () => resolve({ events, error: null, closedAt: Date.now() }),
      },
    );
  });
}

test('SIGTERM: readyz 503 and new requests SERVICE_UNAVAILABLE while draining; in-flight requests finish or end SHUTDOWN, all settled in Postgres and Redis; exit 0', async () => {
  const t = await createTenant(adminApp.url, { monthlyBudgetUsd: '10' });
  // deep_reasoning answers nothing for 20 s: it is still waiting for its first token at the drain deadline.
  await fetch(`${simAdmin()}/__sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'minimax-m2.5', fault: 'timeout', delayMs: 20_000, times: 1 }),
  });
  server = await startServerProcess(
    testEnv({ LOG_LEVEL: 'info', DRAIN_TIMEOUT_MS: '2500', CHECKPOINT_INTERVAL_MS: '200', FIRST_TOKEN_FLOOR_MS: '20000' }, sim),
  );
  const ws = wsClient(server.url, t.key);
  let longStarted!: () => void;
  const longGoing = new Promise<void>((r) => (longStarted = r));
  const long = stream(ws, hello('long_form', { maxTokens: 400 }), (n) => n === 3 && longStarted());
  const nothing = stream(ws, hello('deep_reasoning', { maxTokens: 50 }));
  // With an idempotency key: a first request ended by SHUTDOWN releases it, so the retry runs afresh (issue 11 item 5).
  const keyed = hello('long_form', { maxTokens: 400, idempotencyKey: uniqueName('shutdown') });
  const mutation = gql(server.url, t.key, CHAT_OUTCOME, keyed);
  await longGoing;
  // The mutation has consumed tokens (its checkpoint shows them) before the signal.
  await until(
    async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, profile: 'long_form', checkpointTokens: { gt: 0 } } })) === 2,
    'both long requests to deliver tokens',
  );
  let shortStarted!: () => void;
  const shortGoing = new Promise<void>((r) => (shortStarted = r));
  const short = stream(ws, hello('chat_default', { maxTokens: 40 }), (n) => n === 1 && shortStarted());
  await shortGoing;

  const signalledAt = Date.now();
  server.proc.kill('SIGTERM');
  const readyz = server.url.replace('/graphql', '/readyz');
  await until(async () => (await fetch(readyz)).status === 503, '/readyz to answer 503 while draining', 2_000, 20);
  const refused = await gql(server.url, t.key, CHAT_OUTCOME, hello('chat_default', { maxTokens: 10 }));
  expect(refused.status).toBe(503);
  expect(refused.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');

  const [l, n, s, m] = await Promise.all([long, nothing, short, mutation]);
  expect(await server.exited).toBe(0);
  expect(Date.now() - signalledAt).toBeLessThan(2_500 + 3_000);

  // Finished within the drain window.
  expect(s.error).toBeNull();
  expect(s.events.at(-1)).toMatchObject({ done: true, outcome: 'COMPLETED' });
  // Ended at the deadline after content: a done event saying the server ended it.
  expect(l.error).toBeNull();
  const lDone = l.events.at(-1);
  expect(lDone).toMatchObject({ done: true, outcome: 'SHUTDOWN' });
  expect(lDone.usage.completionTokens).toBeGreaterThan(0);
  expect(lDone.usage.completionTokens).toBeLessThan(400);
  expect(l.closedAt - signalledAt).toBeGreaterThanOrEqual(2_400);
  // Ended before any content: SERVICE_UNAVAILABLE, nothing charged.
  expect(n.events).toEqual([]);
  expect(n.error?.[0]?.extensions?.code ?? n.error?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
  // The mutation that consumed tokens returns its partial result.
  expect(m.errors).toBeUndefined();
  expect(m.data!.chat).toMatchObject({ outcome: 'SHUTDOWN' });
  expect(m.data!.chat.usage.completionTokens).toBeGreaterThan(0);
  expect(m.data!.chat.content.length).toBeGreaterThan(0);

  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
  expect(rows).toHaveLength(4); // the refused request left no row
  const by = (p: string) => rows.filter((r) => r.profile === p);
  expect(rows.every((r) => r.state === 'SETTLED' && r.gatePendingSince === null)).toBe(true);
  expect(by('long_form').map((r) => r.outcome)).toEqual(['SHUTDOWN', 'SHUTDOWN']);
  expect(by('deep_reasoning')[0]).toMatchObject({ outcome: 'SHUTDOWN', costMicros: 0n });
  expect(by('chat_default')[0]).toMatchObject({ outcome: 'COMPLETED' });
  const lRow = rows.find((r) => r.requestId === lDone.requestId)!;
  expect(lRow.completionTokens).toBe(lDone.usage.completionTokens);
  const sum = rows.reduce((a, r) => a + r.costMicros, 0n);
  expect(await limiter.budgetState(t.id, monthOf(new Date()))).toEqual({ spentMicros: sum, heldMicros: 0n });
  // No request reached the reaper: the drain settled them all itself.
  expect(server.logs.some((j) => j.msg === 'reaper settled an orphaned request')).toBe(false);
  expect(server.logs.find((j) => j.msg === 'drained')).toMatchObject({ finished: 1, ended: 3 });

  // The client retries the keyed mutation on another instance: not a replay of the cut answer but a new request,
  // charged on its own; the first stays charged for what it consumed.
  const retry = await gql(adminApp.url, t.key, CHAT_OUTCOME, keyed);
  expect(retry.errors).toBeUndefined();
  expect(retry.data!.chat.requestId).not.toBe(m.data!.chat.requestId);
  expect(retry.data!.chat.outcome).toBe('COMPLETED');
  const after = await db.ledgerEntry.findMany({ where: { tenantId: t.id, profile: 'long_form' } });
  expect(after.map((r) => r.outcome).sort()).toEqual(['COMPLETED', 'SHUTDOWN', 'SHUTDOWN']);
}, 90_000);

test('npm start: SIGTERM to the npm process stops the server (no orphaned child keeps answering)', async () => {
  server = await startServerProcess(testEnv({ LOG_LEVEL: 'info' }, sim), { command: ['npm', 'start', '--silent'] });
  const healthz = server.url.replace('/graphql', '/healthz');
  expect((await fetch(healthz)).status).toBe(200);
  server.proc.kill('SIGTERM');
  expect(await server.exited).toBe(0);
  await until(
    () =>
      fetch(healthz).then(
        () => false,
        () => true,
      ),
    'the server to stop answering',
    5_000,
  );
}, 60_000);
