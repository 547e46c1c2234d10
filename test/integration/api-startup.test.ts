import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { CHAT, createTenant, gql, hello, startApp, startSim, subscribeAll, TEST_ADMIN_KEY, wsClient } from '../support/app';
import { TEST_DATABASE_URL } from '../support/env';
import { until as waitUntil } from '../support/wait';

/**
 * Start-up and readiness: buildApp fails fast naming the service it cannot reach, and /readyz follows Redis going
 * away and coming back (a redis-server of the test's own on a free port, so the machine's Redis is never touched).
 */

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

/** True once `probe` is (false after `ms`, for the assertion to report). */
const until = (probe: () => Promise<boolean>, ms: number): Promise<boolean> =>
  waitUntil(probe, 'the probe', ms).then(
    () => true,
    () => false,
  );

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

async function stopRedis(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}

describe('buildApp fails fast, naming what it cannot reach', () => {
  // ioredis's disconnect() of a client that never connected arms a 2 s "destroy the stream" timer (its
  // disconnectTimeout) that nothing clears; let it run out so jest does not report an open handle.
  afterAll(() => new Promise((r) => setTimeout(r, 2_100)));

  it('Redis at a closed port: rejects with a message naming the Redis URL', async () => {
    const started = Date.now();
    await expect(startApp({ REDIS_URL: 'redis://127.0.0.1:1' })).rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 20_000);

  it('Postgres at a closed port: rejects with a message naming the URL, without its password', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.port = '1';
    url.password = 'hunter2';
    const err = await startApp({ DATABASE_URL: url.toString() }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/cannot reach Postgres at postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:1\//);
    expect(err!.message).not.toContain('hunter2');
  }, 20_000);
});

describe('/readyz follows Redis', () => {
  let sim: Simulator;
  let app: App | null = null;
  let redis: ChildProcess | null = null;
  let port: number;

  beforeAll(async () => {
    sim = await startSim(0);
    port = await freePort();
    redis = startRedis(port);
    expect(await until(() => accepts(port), 5_000)).toBe(true);
    app = await startApp({ REDIS_URL: `redis://127.0.0.1:${port}` }, sim);
  });

  afterAll(async () => {
    await app?.stop();
    await stopRedis(redis);
    await sim?.close();
  });

  const readyz = async () => fetch(`${new URL(app!.url).origin}/readyz`);
  const healthz = async () => fetch(`${new URL(app!.url).origin}/healthz`);

  it('200 while Redis answers; 503 SERVICE_UNAVAILABLE (never 500) once it is gone; 200 again when it is back', async () => {
    expect((await readyz()).status).toBe(200);
    const t = await createTenant(app!.url);
    expect((await gql(app!.url, t.key, CHAT, hello('fast_classify', { maxTokens: 3 }))).errors).toBeUndefined();

    await stopRedis(redis);
    redis = null;
    expect(await until(async () => (await readyz()).status === 503, 5_000)).toBe(true);
    const body = (await (await readyz()).json()) as { status: string };
    expect(body.status).toBe('unavailable');
    // Liveness is not readiness: the process itself is fine.
    expect((await healthz()).status).toBe(200);

    // A GraphQL request now is refused as the contract says: 503 SERVICE_UNAVAILABLE, nothing charged.
    const r = await gql(app!.url, t.key, CHAT, hello('fast_classify', { maxTokens: 3 }));
    expect(r.status).toBe(503);
    expect(r.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify(r)).not.toMatch(/stacktrace|ECONNREFUSED|127\.0\.0\.1/);
    const admin = await gql(app!.url, TEST_ADMIN_KEY, `query { tenants { id } }`);
    expect(admin.status).toBe(503);
    // On graphql-ws, a connection is closed with 1013 Try Again Later, not 4403: the key is fine, the backend is not.
    const ws = wsClient(app!.url, t.key);
    const closed = await subscribeAll(ws, `query { me { id } }`, {});
    await ws.dispose();
    expect(closed.events).toEqual([]);
    expect((closed.error as { code?: number }).code).toBe(1013);

    redis = startRedis(port);
    expect(await until(async () => (await readyz()).status === 200, 8_000)).toBe(true);
    expect((await gql(app!.url, t.key, `query { me { id } }`)).errors).toBeUndefined();
  }, 30_000);
});
