import { spawn } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

/** Config: the defaults of issue 2, and every wrong value stops with a message naming the variable and what it expects. */

/** Calls loadConfig and returns the error it throws (failing the test when it does not throw). */
function configError(env: NodeJS.ProcessEnv): Error {
  try {
    loadConfig(env);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) accepted the environment`);
}

describe('defaults (nothing set)', () => {
  const c = loadConfig({});

  test('the variables of issue 2 default as it says', () => {
    expect({
      PORT: c.PORT,
      DATABASE_URL: c.DATABASE_URL,
      REDIS_URL: c.REDIS_URL,
      GLOBAL_API_BASE_URL: c.GLOBAL_API_BASE_URL,
      GLOBAL_API_KEY: c.GLOBAL_API_KEY,
      SIM_PORT: c.SIM_PORT,
      SIM_LATENCY_SCALE: c.SIM_LATENCY_SCALE,
      NODE_ENV: c.NODE_ENV,
    }).toEqual({
      PORT: 4000,
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/llm_gateway',
      REDIS_URL: 'redis://127.0.0.1:6379',
      GLOBAL_API_BASE_URL: 'https://global-apis.com/v1',
      GLOBAL_API_KEY: undefined,
      SIM_PORT: 4010,
      SIM_LATENCY_SCALE: 1,
      NODE_ENV: 'development',
    });
  });

  test("the product's own tuning variables have their documented defaults", () => {
    expect({
      LOG_LEVEL: c.LOG_LEVEL,
      MAX_REQUEST_BYTES: c.MAX_REQUEST_BYTES,
      FIRST_TOKEN_FLOOR_MS: c.FIRST_TOKEN_FLOOR_MS,
      FIRST_TOKEN_TTFT_MULTIPLE: c.FIRST_TOKEN_TTFT_MULTIPLE,
      IDLE_TIMEOUT_MS: c.IDLE_TIMEOUT_MS,
      TOTAL_TIMEOUT_MS: c.TOTAL_TIMEOUT_MS,
      LEASE_MS: c.LEASE_MS,
      CHECKPOINT_INTERVAL_MS: c.CHECKPOINT_INTERVAL_MS,
      REAPER_INTERVAL_MS: c.REAPER_INTERVAL_MS,
      ROLLUP_INTERVAL_MS: c.ROLLUP_INTERVAL_MS,
      IDEMPOTENCY_PURGE_INTERVAL_MS: c.IDEMPOTENCY_PURGE_INTERVAL_MS,
    }).toEqual({
      LOG_LEVEL: 'info',
      MAX_REQUEST_BYTES: 256 * 1024,
      // The article's 800 ms per attempt is the floor of the first-token deadline.
      FIRST_TOKEN_FLOOR_MS: 800,
      FIRST_TOKEN_TTFT_MULTIPLE: 2,
      IDLE_TIMEOUT_MS: 10_000,
      TOTAL_TIMEOUT_MS: 300_000,
      LEASE_MS: 30_000,
      CHECKPOINT_INTERVAL_MS: 1_000,
      REAPER_INTERVAL_MS: 5_000,
      ROLLUP_INTERVAL_MS: 15 * 60_000,
      IDEMPOTENCY_PURGE_INTERVAL_MS: 3600_000,
    });
  });

  test('no fixed admin secret: outside production one is generated per process, long and different each time', () => {
    expect(c.adminKeyGenerated).toBe(true);
    expect(c.ADMIN_API_KEY.length).toBeGreaterThanOrEqual(24);
    const again = loadConfig({});
    expect(again.adminKeyGenerated).toBe(true);
    expect(again.ADMIN_API_KEY).not.toBe(c.ADMIN_API_KEY);
    expect(loadConfig({ NODE_ENV: 'test' }).adminKeyGenerated).toBe(true);
  });

  test('the embedded simulator serves when GLOBAL_API_KEY is unset', () => {
    expect(c.useSimulator).toBe(true);
  });

  test('the config is frozen', () => {
    expect(Object.isFrozen(c)).toBe(true);
  });
});

describe('values that are set', () => {
  test('are parsed to their types', () => {
    const c = loadConfig({
      PORT: '8080',
      DATABASE_URL: 'postgres://u:p@db.internal:6543/gw',
      REDIS_URL: 'rediss://cache:6380/2',
      GLOBAL_API_BASE_URL: 'http://localhost:9999/v1',
      GLOBAL_API_KEY: 'sk-live',
      ADMIN_API_KEY: 'a'.repeat(24),
      SIM_PORT: '0',
      SIM_LATENCY_SCALE: '0.25',
      NODE_ENV: 'production',
    });
    expect(c).toMatchObject({
      PORT: 8080,
      DATABASE_URL: 'postgres://u:p@db.internal:6543/gw',
      REDIS_URL: 'rediss://cache:6380/2',
      GLOBAL_API_BASE_URL: 'http://localhost:9999/v1',
      GLOBAL_API_KEY: 'sk-live',
      ADMIN_API_KEY: 'a'.repeat(24),
      adminKeyGenerated: false,
      SIM_PORT: 0,
      SIM_LATENCY_SCALE: 0.25,
      NODE_ENV: 'production',
      useSimulator: false,
    });
  });

  test('useSimulator is true exactly when GLOBAL_API_KEY is unset (an empty value, as compose passes it, is unset)', () => {
    expect(loadConfig({ GLOBAL_API_KEY: 'k' }).useSimulator).toBe(false);
    expect(loadConfig({}).useSimulator).toBe(true);
    expect(loadConfig({ GLOBAL_API_KEY: '' }).useSimulator).toBe(true);
  });

  test('an empty ADMIN_API_KEY counts as unset (generated outside production, refused in production)', () => {
    expect(loadConfig({ ADMIN_API_KEY: '' }).adminKeyGenerated).toBe(true);
    expect(configError({ ADMIN_API_KEY: '', NODE_ENV: 'production' })).toBeInstanceOf(ConfigError);
  });

  test('PORT=0 is allowed (a free port: several instances side by side)', () => {
    expect(loadConfig({ PORT: '0' }).PORT).toBe(0);
  });
});

describe('wrong values stop with a ConfigError naming the variable and what it expects', () => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ PORT: 'abc' }, 'PORT', /port number 0\.\.65535/],
    [{ PORT: '70000' }, 'PORT', /port number 0\.\.65535/],
    [{ PORT: '-1' }, 'PORT', /port number 0\.\.65535/],
    [{ PORT: '4000.5' }, 'PORT', /port number/],
    [{ PORT: ' ' }, 'PORT', /port number/],
    [{ PORT: '0x10' }, 'PORT', /port number/],
    [{ PORT: '1e3' }, 'PORT', /port number/],
    [{ LEASE_MS: '1e4' }, 'LEASE_MS', /positive whole number/],
    [{ SIM_PORT: 'x' }, 'SIM_PORT', /port number 0\.\.65535/],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', /postgresql:\/\//],
    [{ DATABASE_URL: 'notaurl' }, 'DATABASE_URL', /URL/],
    [{ REDIS_URL: 'notaurl' }, 'REDIS_URL', /URL/],
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL', /redis:\/\//],
    [{ GLOBAL_API_BASE_URL: 'ftp://x' }, 'GLOBAL_API_BASE_URL', /https?:\/\//],
    [{ SIM_LATENCY_SCALE: '-1' }, 'SIM_LATENCY_SCALE', />= 0/],
    [{ SIM_LATENCY_SCALE: 'fast' }, 'SIM_LATENCY_SCALE', />= 0/],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV', /development.*production.*test/],
    [{ ADMIN_API_KEY: 'too-short' }, 'ADMIN_API_KEY', /at least 24 characters/],
    [{ LEASE_MS: '0' }, 'LEASE_MS', /positive whole number/],
    [{ ROLLUP_INTERVAL_MS: '0' }, 'ROLLUP_INTERVAL_MS', /positive whole number/],
    [{ IDEMPOTENCY_PURGE_INTERVAL_MS: '1h' }, 'IDEMPOTENCY_PURGE_INTERVAL_MS', /positive whole number/],
  ];

  test.each(cases)('%j', (env, variable, expects) => {
    const e = configError(env);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain(`${variable}=`);
    expect(e.message).toMatch(expects);
    // The value that was refused is shown (not a secret's); zod's internal wording is not.
    if (variable !== 'ADMIN_API_KEY') expect(e.message).toContain(JSON.stringify(env[variable]));
    else expect(e.message).not.toContain(env[variable]!); // a secret is never echoed back
    expect(e.message).not.toMatch(/NaN|Invalid input/);
  });

  test('every wrong variable is named at once', () => {
    const e = configError({ PORT: 'abc', REDIS_URL: 'http://x', SIM_LATENCY_SCALE: '-1' });
    expect(e).toBeInstanceOf(ConfigError);
    for (const v of ['PORT=', 'REDIS_URL=', 'SIM_LATENCY_SCALE=']) expect(e.message).toContain(v);
  });

  test('NODE_ENV=production without ADMIN_API_KEY: a ConfigError saying how to set it', () => {
    const e = configError({ NODE_ENV: 'production' });
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain('ADMIN_API_KEY');
    expect(e.message).toMatch(/production/);
    expect(e.message).toMatch(/ADMIN_API_KEY=\S+/); // an example of how to set it
    expect(e.message).toMatch(/openssl rand/);
  });
});

describe('the process stops on a wrong value', () => {
  const root = path.resolve(__dirname, '../..');

  /** Runs src/main.ts from the sources (tsx), or as `npm start` (the built bundle), and collects its exit. */
  function runMain(env: Record<string, string>, cmd: 'node' | 'npm' = 'node') {
    const args = cmd === 'npm' ? ['start', '--silent'] : ['--require', 'tsx/cjs', 'src/main.ts'];
    const started = Date.now();
    const proc = spawn(cmd === 'npm' ? 'npm' : process.execPath, args, {
      cwd: root,
      // Services that do not exist: a config error must stop the process before anything is contacted.
      env: { ...process.env, DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nope', REDIS_URL: 'redis://127.0.0.1:1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += String(d)));
    return new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      proc.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr, ms: Date.now() - started });
      });
    });
  }

  test('npm start with PORT=abc exits non-zero within seconds, naming PORT and what it expects', async () => {
    const r = await runMain({ PORT: 'abc' }, 'npm');
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).toContain('PORT="abc"');
    expect(r.stderr).toMatch(/port number/);
    expect(r.stderr).not.toMatch(/cannot reach/); // it stopped at the config, before any service
  });

  test('REDIS_URL=notaurl: exits non-zero naming REDIS_URL (no stack trace)', async () => {
    const r = await runMain({ REDIS_URL: 'notaurl' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('REDIS_URL="notaurl"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('NODE_ENV=production without ADMIN_API_KEY: exits non-zero saying how to set it', async () => {
    const r = await runMain({ NODE_ENV: 'production', ADMIN_API_KEY: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ADMIN_API_KEY=\S+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
