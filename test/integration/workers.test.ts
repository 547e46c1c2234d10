import { execFile } from 'node:child_process';
import { Agent, fetch as undiciFetch } from 'undici';
import { createPrisma } from '../../src/infra/prisma';
import type { Simulator } from '../../src/simulator/server';
import type { App } from '../../src/app';
import { TEST_DATABASE_URL } from '../support/env';
import { createTenant, hello, startApp, startSim, testEnv } from '../support/app';
import { ROOT, startServerProcess, type ServerProcess } from '../support/server-process';
import { until } from '../support/wait';

/**
 * WORKERS=2 (#12 "More than one core"): one port served by two worker processes of one gateway (node:cluster), each
 * a whole instance; SIGTERM to the primary drains every worker: requests in flight on both finish or end SHUTDOWN,
 * every row is settled, and the process tree exits 0.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
let sim: Simulator;
let adminApp: App;
let server: ServerProcess | null = null;

const CHAT_OUTCOME = `mutation($input: ChatInput!) { chat(input: $input) { requestId outcome usage { completionTokens } } }`;

beforeAll(async () => {
  sim = await startSim(1); // real pace: requests are still running when the signal comes
  adminApp = await startApp({}, sim, { background: false });
});
afterAll(async () => {
  if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL');
  await adminApp?.stop();
  await sim?.close();
  await db.$disconnect();
});

/** A chat mutation on a connection of its own (no keep-alive), so that the primary hands it to the next worker. */
async function chatAlone(url: string, key: string, variables: Record<string, unknown>) {
  const dispatcher = new Agent({ pipelining: 0 });
  try {
    const res = await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, connection: 'close' },
      body: JSON.stringify({ query: CHAT_OUTCOME, variables }),
      dispatcher,
    });
    return (await res.json()) as { data?: { chat: { requestId: string; outcome: string } }; errors?: unknown[] };
  } finally {
    await dispatcher.close();
  }
}

const workerIds = (logs: ReadonlyArray<Record<string, unknown>>, msg: string) => new Set(logs.filter((l) => l.msg === msg).map((l) => l.worker));

test('two workers serve one port; SIGTERM drains both: every request answered and settled, exit 0', async () => {
  const t = await createTenant(adminApp.url, { monthlyBudgetUsd: '10' });
  server = await startServerProcess(testEnv({ WORKERS: '2', LOG_LEVEL: 'info', DRAIN_TIMEOUT_MS: '3000', CHECKPOINT_INTERVAL_MS: '200' }, sim));
  const primaryReady = server.logs.find((l) => l.msg === 'llm-gateway listening');
  expect(primaryReady).toMatchObject({ workers: 2 });
  // Each worker's own log line is written by its process and may reach the pipe after the primary's.
  await until(() => workerIds(server!.logs, 'worker listening').size === 2, 'both workers logged that they listen');
  expect(workerIds(server.logs, 'worker listening')).toEqual(new Set([1, 2]));

  // Short requests on fresh connections: both workers answer on the one port.
  const quick = await Promise.all(Array.from({ length: 8 }, () => chatAlone(server!.url, t.key, hello('chat_default', { maxTokens: 5 }))));
  expect(quick.map((r) => r.errors ?? r.data?.chat.outcome)).toEqual(Array(8).fill('COMPLETED'));
  await until(() => workerIds(server!.logs, 'graphql operation').size === 2, 'operations logged by both workers', 5_000);

  // Long requests in flight on both workers when the primary is told to stop.
  const long = Array.from({ length: 6 }, () => chatAlone(server!.url, t.key, hello('long_form', { maxTokens: 400 })));
  await until(
    async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, profile: 'long_form', checkpointTokens: { gt: 0 } } })) === 6,
    'six long requests delivering tokens',
    15_000,
  );
  server.proc.kill('SIGTERM');
  const answers = await Promise.all(long);
  expect(answers.map((r) => r.errors ?? r.data?.chat.outcome).every((o) => o === 'COMPLETED' || o === 'SHUTDOWN')).toBe(true);
  expect(await server.exited).toBe(0);
  expect(workerIds(server.logs, 'stopped')).toEqual(new Set([1, 2]));
  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, select: { state: true } });
  expect(rows).toHaveLength(14);
  expect(rows.every((r) => r.state === 'SETTLED')).toBe(true);
}, 60_000);

test.each(['0', '65', '2.5', 'two'])('WORKERS=%s stops the process before anything starts, naming the variable', async (value) => {
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts'],
      { cwd: ROOT, env: { ...process.env, ...testEnv({ WORKERS: value }, sim) }, timeout: 20_000 },
      (err, _out, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) }),
    ),
  );
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`WORKERS="${value}": expected`);
});
