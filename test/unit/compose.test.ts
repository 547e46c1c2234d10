import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config';

/**
 * docker-compose.yml cannot run here (no Docker engine), so it is checked against the code: service names, images,
 * ports and the app's variables agree with loadConfig's defaults (hosts aside: inside compose they are service names).
 */
// COMPOSE_TEST_FILE: check another file instead (used to see these tests fail on broken copies).
const file = readFileSync(process.env.COMPOSE_TEST_FILE ?? path.resolve(__dirname, '../../docker-compose.yml'), 'utf8');
const compose = parse(file) as { services?: Record<string, Service> };
const defaults = loadConfig({});

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | number | { target: number; published: number | string }>;
  volumes?: Array<string | { source?: string; target: string }>;
  working_dir?: string;
  depends_on?: string[] | Record<string, { condition?: string }>;
}

const CONFIG_VARIABLES = [
  'PORT',
  'DATABASE_URL',
  'REDIS_URL',
  'GLOBAL_API_BASE_URL',
  'GLOBAL_API_KEY',
  'ADMIN_API_KEY',
  'SIM_PORT',
  'SIM_LATENCY_SCALE',
  'NODE_ENV',
];

const service = (name: string): Service => {
  const s = compose.services?.[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
};

/** A service's environment as a map, whichever of compose's two forms it uses. */
function environment(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((e) => {
        const i = e.indexOf('=');
        return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** host port -> container port, from the short ("4000:4000", "127.0.0.1:4000:4000") and long syntaxes. */
function portMap(s: Service): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of s.ports ?? []) {
    if (typeof p === 'object') {
      m.set(Number(p.published), Number(p.target));
      continue;
    }
    const parts = String(p)
      .replace(/\/(tcp|udp)$/, '')
      .split(':');
    if (parts.length < 2) continue; // a container port only: published on a random host port
    m.set(Number(parts[parts.length - 2]), Number(parts[parts.length - 1]));
  }
  return m;
}

/** Resolves compose's ${VAR}, ${VAR:-default} and ${VAR-default} against `shell`. */
function interpolate(value: string, shell: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?:(:?-)([^}]*))?\}/g, (_m, name: string, op: string | undefined, def: string | undefined) => {
    const v = shell[name];
    if (op === ':-') return v ? v : (def ?? '');
    if (op === '-') return v !== undefined ? v : (def ?? '');
    return v ?? '';
  });
}

test('the file parses and has the services postgres, redis and app', () => {
  expect(compose.services).toBeDefined();
  expect(Object.keys(compose.services!)).toEqual(expect.arrayContaining(['postgres', 'redis', 'app']));
});

test('images: Postgres 15, Redis 7, Node 20', () => {
  expect(service('postgres').image).toMatch(/^postgres:15(\b|[.-])/);
  expect(service('redis').image).toMatch(/^redis:7(\b|[.-])/);
  expect(service('app').image).toMatch(/^node:(22|24)(\b|[.-])/);
});

test('ports: Postgres and Redis published where the default URLs point, the app on the default PORT', () => {
  const pgDefault = new URL(defaults.DATABASE_URL);
  const redisDefault = new URL(defaults.REDIS_URL);
  expect(pgDefault.port).toBe('5432');
  expect(redisDefault.port).toBe('6379');
  expect(defaults.PORT).toBe(4000);
  expect(portMap(service('postgres')).get(Number(pgDefault.port))).toBe(5432);
  expect(portMap(service('redis')).get(Number(redisDefault.port))).toBe(6379);
  const appEnv = environment(service('app'));
  expect(portMap(service('app')).get(defaults.PORT)).toBe(Number(appEnv.PORT ?? defaults.PORT));
});

describe("the app's environment", () => {
  const env = environment(service('app'));

  test('names every config variable, and only variables the config knows', () => {
    for (const v of CONFIG_VARIABLES) expect(Object.keys(env)).toContain(v);
    const known = new Set(Object.keys(loadConfig({ GLOBAL_API_KEY: 'k', ADMIN_API_KEY: 'a'.repeat(24) })));
    for (const derived of ['adminKeyGenerated', 'useSimulator']) known.delete(derived);
    for (const k of Object.keys(env)) expect(known.has(k) ? k : `unknown variable ${k}`).toBe(k);
  });

  test("agrees with loadConfig's defaults; Postgres and Redis by service name, same port and database", () => {
    expect(env.PORT).toBe(String(defaults.PORT));
    expect(env.GLOBAL_API_BASE_URL).toBe(defaults.GLOBAL_API_BASE_URL);
    expect(env.SIM_PORT).toBe(String(defaults.SIM_PORT));
    expect(Number(env.SIM_LATENCY_SCALE)).toBe(defaults.SIM_LATENCY_SCALE);
    expect(env.NODE_ENV).toBe(defaults.NODE_ENV);

    const db = new URL(env.DATABASE_URL!);
    const dbDefault = new URL(defaults.DATABASE_URL);
    expect(db.protocol).toBe(dbDefault.protocol);
    expect(db.hostname).toBe('postgres');
    expect(db.port).toBe(dbDefault.port);
    expect(db.username).toBe(dbDefault.username);
    expect(db.pathname).toBe(dbDefault.pathname); // the database name

    const redis = new URL(env.REDIS_URL!);
    const redisDefault = new URL(defaults.REDIS_URL);
    expect(redis.protocol).toBe(redisDefault.protocol);
    expect(redis.hostname).toBe('redis');
    expect(redis.port).toBe(redisDefault.port);
    expect(redis.pathname.replace(/^\/?0?$/, '')).toBe(redisDefault.pathname.replace(/^\/?0?$/, '')); // the logical database
  });

  test('no secret is written in the file: GLOBAL_API_KEY and ADMIN_API_KEY come from the host, empty by default', () => {
    for (const secret of ['GLOBAL_API_KEY', 'ADMIN_API_KEY']) {
      expect(env[secret]).toMatch(new RegExp(`^\\$\\{${secret}(:?-)?\\}$`));
      expect(interpolate(env[secret]!, {})).toBe('');
      expect(interpolate(env[secret]!, { [secret]: 'from-the-host-0123456789abcdef' })).toBe('from-the-host-0123456789abcdef');
    }
  });

  test('as compose would pass it with nothing set on the host, the config accepts it and serves from the simulator', () => {
    const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v, {})]));
    const c = loadConfig(resolved);
    expect(c.useSimulator).toBe(true);
    expect(c.PORT).toBe(defaults.PORT);
    expect(c.adminKeyGenerated).toBe(true); // development: generated and printed once
  });
});

test('postgres accepts the default URL: its database exists and a password-less user can log in', () => {
  const pgEnv = environment(service('postgres'));
  const dbDefault = new URL(defaults.DATABASE_URL);
  expect(pgEnv.POSTGRES_DB ?? 'postgres').toBe(dbDefault.pathname.slice(1));
  expect(dbDefault.username || 'postgres').toBe(pgEnv.POSTGRES_USER ?? 'postgres');
  if (dbDefault.password) expect(pgEnv.POSTGRES_PASSWORD).toBe(decodeURIComponent(dbDefault.password));
  else expect(pgEnv.POSTGRES_HOST_AUTH_METHOD).toBe('trust');
});

test('the app installs and starts as the README says, from the repository, once Postgres and Redis are healthy', () => {
  const app = service('app');
  const command = Array.isArray(app.command) ? app.command.join(' ') : (app.command ?? '');
  expect(command).toMatch(/npm ci\b.*&&.*npm start\b/);
  // The repository is mounted at the working directory (or the image is built from it).
  const mounted = (app.volumes ?? []).some((v) =>
    typeof v === 'string' ? v.split(':')[0] === '.' && v.split(':')[1] === app.working_dir : v.source === '.' && v.target === app.working_dir,
  );
  expect(mounted || app.build !== undefined).toBe(true);
  const deps = app.depends_on ?? [];
  const names = Array.isArray(deps) ? deps : Object.keys(deps);
  expect(names).toEqual(expect.arrayContaining(['postgres', 'redis']));
  if (!Array.isArray(deps)) {
    expect(deps.postgres?.condition).toBe('service_healthy');
    expect(deps.redis?.condition).toBe('service_healthy');
  }
});

test("docker stop reaches the server: npm start is exec'd (not a child of a PID-1 shell) and the stop grace outlasts the drain", () => {
  const app = service('app') as Record<string, any>;
  const command = Array.isArray(app.command) ? app.command.join(' ') : String(app.command ?? '');
  expect(command).toMatch(/&&\s*exec npm start\b/);
  const grace = String(app.stop_grace_period ?? '');
  const m = /^(\d+)s$/.exec(grace);
  expect(m).not.toBeNull();
  expect(Number(m![1]) * 1000).toBeGreaterThan(loadConfig({}).DRAIN_TIMEOUT_MS);
});
