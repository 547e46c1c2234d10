import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig } from '../../src/config';
import { buildApp, StartupError, type App } from '../../src/app';
import { createLogger } from '../../src/infra/logger';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { gql, startApp, TEST_ADMIN_KEY, testEnv } from '../support/app';
import { until } from '../support/wait';

/**
 * Start-up against real services: fail fast naming the URL when Postgres or Redis is unreachable, /healthz and
 * /readyz (including Redis going away under a running app), and `npm start` as a real process end to end.
 */
const root = path.resolve(__dirname, '../..');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `p`'s value, or null when it takes longer than `ms` (the timer does not outlive the race). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Builds an app from `env` (on top of the test env) and returns how it failed and how long that took. */
async function buildFailure(env: Record<string, string>): Promise<{ error: Error; ms: number }> {
  const config = loadConfig(testEnv(env));
  const started = Date.now();
  try {
    const app = await buildApp(config, { host: '127.0.0.1', logger: createLogger('silent'), background: false });
    await app.stop();
  } catch (e) {
    return { error: e as Error, ms: Date.now() - started };
  }
  throw new Error('buildApp started although a service is unreachable');
}

describe('buildApp fails fast, naming the URL and how to start the service', () => {
  test('Postgres on a closed port', async () => {
    const { error, ms } = await buildFailure({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/x' });
    expect(error).toBeInstanceOf(StartupError);
    expect(error.message).toContain('postgresql://postgres@127.0.0.1:1/x');
    expect(error.message).toContain('docker compose up -d postgres');
    expect(ms).toBeLessThan(8_000);
  });

  test('Postgres on a closed port, with a password in the URL: named, the password masked', async () => {
    const { error } = await buildFailure({ DATABASE_URL: 'postgresql://postgres:hunter2secret@127.0.0.1:1/x' });
    expect(error).toBeInstanceOf(StartupError);
    expect(error.message).toContain('127.0.0.1:1/x');
    expect(error.message).not.toContain('hunter2secret');
  });

  test('Redis on a closed port', async () => {
    const { error, ms } = await buildFailure({ REDIS_URL: 'redis://127.0.0.1:1' });
    expect(error).toBeInstanceOf(StartupError);
    expect(error.message).toContain('redis://127.0.0.1:1');
    expect(error.message).toContain('docker compose up -d redis');
    expect(ms).toBeLessThan(8_000);
  });
});

describe('health endpoints', () => {
  let app: App | null = null;
  afterEach(async () => {
    await app?.stop();
    app = null;
  });

  const probe = async (base: string, p: string) => {
    const res = await fetch(`${base}${p}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test('a started app answers /healthz 200 and /readyz 200', async () => {
    app = await startApp();
    const base = `http://127.0.0.1:${app.port}`;
    expect(await probe(base, '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await probe(base, '/readyz')).toMatchObject({ status: 200 });
  });

  test('/readyz answers 503 when its Redis goes away (while /healthz stays 200), and 200 again when it is back', async () => {
    const port = await freePort();
    const startRedis = async () => {
      const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(proc);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('redis-server did not start')), 5_000);
        proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
        createInterface({ input: proc.stdout! }).on('line', (l) => {
          if (/Ready to accept connections/.test(l)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      return proc;
    };
    const redis = await startRedis();
    app = await startApp({ REDIS_URL: `redis://127.0.0.1:${port}` });
    const base = `http://127.0.0.1:${app.port}`;
    expect((await probe(base, '/readyz')).status).toBe(200);

    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    let ready = await probe(base, '/readyz');
    await until(async () => (ready = await probe(base, '/readyz')).status === 503, '/readyz to answer 503', 5_000).catch(() => undefined);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'unavailable' });
    expect((await probe(base, '/healthz')).status).toBe(200);

    const again = await startRedis();
    await until(async () => (ready = await probe(base, '/readyz')).status === 200, '/readyz to answer 200 again', 8_000, 100).catch(() => undefined);
    expect(ready.status).toBe(200);
    await app.stop();
    app = null;
    again.kill('SIGKILL');
  });
});

interface LogLine {
  msg?: string;
  url?: string;
  [k: string]: unknown;
}

/** `npm start`'s process (tsx + src/main.ts) with its JSON log lines and stderr. */
function startMain(env: Record<string, string>) {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.GLOBAL_API_KEY;
  delete base.GLOBAL_API_BASE_URL;
  delete base.ADMIN_API_KEY;
  const proc = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/main.ts'], { cwd: root, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  const lines: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    stdout += `${l}\n`;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      /* not a log line */
    }
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const waitFor = async (msg: string, ms = 30_000): Promise<LogLine> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = lines.find((l) => l.msg === msg);
      if (hit) return hit;
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`no "${msg}" log line; stdout:\n${stdout}\nstderr:\n${stderr}`);
      await within(new Promise<void>((r) => waiters.push(r)), 200);
    }
  };
  return { proc, lines, exited, waitFor, out: () => ({ stdout, stderr }) };
}

const EXPECTED_PRICES: Record<string, string> = {
  // model-table.md, "$ per 1M output tokens", as the Usd scalar writes them.
  'step-3.5-flash': '0.150000',
  'deepseek-v4-flash': '0.250000',
  'hunyuan-turbos': '0.280000',
  'qwen3-8b': '0.010000',
  'qwen3-32b': '0.280000',
  'doubao-seed-lite': '0.400000',
  'hunyuan-turbo': '0.570000',
  'glm-4-32b': '0.560000',
  'qwen3.5-27b': '0.190000',
  'deepseek-v4-pro': '0.780000',
  'minimax-m2.5': '1.150000',
  'glm-5': '1.920000',
  'kimi-k2.5': '3.000000',
  'deepseek-r1': '2.500000',
  'qwen3.5-397b': '2.340000',
};

describe('npm start as a real process', () => {
  test('migrates, seeds, serves the 15 models from the embedded simulator setup, and exits 0 on SIGTERM', async () => {
    const main = startMain({
      PORT: '0',
      NODE_ENV: 'test',
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: 'info',
      SIM_LATENCY_SCALE: '0',
    });
    const listening = await main.waitFor('llm-gateway listening');
    expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
    expect(listening.url).not.toContain(':4000/'); // PORT=0: a free port, so instances can run side by side

    const sim = main.lines.find((l) => l.msg === 'GLOBAL_API_KEY is unset: serving from the embedded upstream simulator');
    expect(sim?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
    expect(main.lines.find((l) => l.msg === 'migrations')).toBeDefined();
    expect(main.lines.find((l) => l.msg === 'seed')).toBeDefined();
    // A new user is told where the playground is and how to get a key; a restart's seed line does not read as a failure.
    expect(listening.playground).toMatch(/^http:\/\/localhost:\d+\/$/);
    expect(listening.getAKey).toMatch(/npm run tenant -- create/);
    // stderr is its own pipe: its banner may arrive a moment after the log line on stdout.
    await until(() => main.out().stderr.includes('Playground:'), 'the banner on stderr', 5_000).catch(() => undefined);
    expect(main.out().stderr).toContain('Playground: http://localhost:');
    const seed = main.lines.find((l) => l.msg === 'seed')!;
    expect(JSON.stringify(seed)).not.toMatch(/"models":0/);
    expect(String(seed.catalog)).toMatch(/^(current|seeded)/);
    // The simulator it logged is really there.
    const simModels = await fetch(`${String(sim!.url).replace(/\/v1\/?$/, '')}/v1/models`, { headers: { authorization: 'Bearer sim' } });
    expect(simModels.status).toBe(200);

    const url = listening.url!;
    const httpBase = url.replace(/\/graphql$/, '');
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);

    const r = await gql<{ models: Array<{ id: string; outputUsdPerMillion: string }> }>(url, TEST_ADMIN_KEY, '{ models { id outputUsdPerMillion } }');
    expect(r.errors).toBeUndefined();
    expect(r.status).toBe(200);
    const got = Object.fromEntries(r.data!.models.map((m) => [m.id, m.outputUsdPerMillion]));
    expect(r.data!.models).toHaveLength(15);
    expect(got).toEqual(EXPECTED_PRICES);

    const signalled = Date.now();
    main.proc.kill('SIGTERM');
    const exit = await within(main.exited, 8_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(8_000);
    await expect(fetch(`${httpBase}/healthz`)).rejects.toThrow(); // the port is closed
    expect(main.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['draining', 'stopped']));
    // The admin key is never logged.
    expect(main.out().stdout).not.toContain(TEST_ADMIN_KEY);
    expect(main.out().stderr).not.toContain(TEST_ADMIN_KEY);
  });

  test('Postgres unreachable: exits 1 within seconds, naming the URL it tried and how to start Postgres', async () => {
    const main = startMain({ PORT: '0', DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/x', REDIS_URL: TEST_REDIS_URL, ADMIN_API_KEY: TEST_ADMIN_KEY });
    const started = Date.now();
    const exit = await within(main.exited, 15_000);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeLessThan(15_000);
    const { stderr } = main.out();
    expect(stderr).toContain('postgresql://postgres@127.0.0.1:1/x');
    expect(stderr).toContain('docker compose up -d postgres');
  });

  test('Redis unreachable: exits 1 within seconds, naming the URL it tried and how to start Redis', async () => {
    const main = startMain({
      PORT: '0',
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: 'redis://127.0.0.1:1',
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: 'silent',
    });
    const started = Date.now();
    const exit = await within(main.exited, 20_000);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeLessThan(20_000);
    const { stderr } = main.out();
    expect(stderr).toContain('redis://127.0.0.1:1');
    expect(stderr).toContain('docker compose up -d redis');
  });
});
