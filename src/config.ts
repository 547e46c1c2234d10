import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * The only reader of process.env. Every variable is validated; a wrong value throws a ConfigError that names the
 * variable and what it expects, and main.ts prints it and exits.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Whole numbers as plain decimal digits only: no blanks, hex, exponents or signs slipping through Number(). */
const digits = (msg: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{1,15}$/, msg)
    .transform(Number);
const port = (def: number) => digits('a port number 0..65535').pipe(z.number().max(65535, 'a port number 0..65535')).default(def);
const positiveInt = (def: number) => digits('a positive whole number').pipe(z.number().positive('a positive whole number')).default(def);
const url = (protocols: readonly string[], def?: string) => {
  const s = z
    .string()
    .url('a URL')
    .refine(
      (v) => {
        try {
          return protocols.includes(new URL(v).protocol);
        } catch {
          return false; // not a URL at all: .url() has already said so
        }
      },
      `a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );
  return def === undefined ? s : s.default(def);
};
const optionalSecret = z.string().min(1).optional();
/** `host:port[,host:port...]`: seed nodes of a Redis Cluster. */
const clusterNodes = z
  .string()
  .trim()
  .regex(/^[^\s,:]+:\d{1,5}(\s*,\s*[^\s,:]+:\d{1,5})*$/, 'a comma-separated list of host:port seed nodes, e.g. 10.0.0.1:7000,10.0.0.2:7000')
  .transform((v) =>
    v.split(',').map((hp) => {
      const [host, p] = hp.trim().split(':') as [string, string];
      return { host, port: Number(p) };
    }),
  )
  .refine((nodes) => nodes.every((n) => n.port >= 1 && n.port <= 65535), 'host:port seed nodes with ports 1..65535')
  .optional();
const SECRETS = new Set(['ADMIN_API_KEY', 'GLOBAL_API_KEY']);

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port(4000),
  /**
   * Processes serving PORT together (node:cluster): each a whole instance with its own pools and jobs. 1: this
   * process serves alone. Size it to the cores; each worker opens its own Postgres pools (see docs/scaling.md).
   */
  WORKERS: digits('a whole number of worker processes 1..64').pipe(z.number().min(1, 'at least 1').max(64, 'at most 64')).default(1),
  DATABASE_URL: url(['postgresql:', 'postgres:'], 'postgresql://postgres@127.0.0.1:5432/llm_gateway'),
  REDIS_URL: url(['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
  GLOBAL_API_BASE_URL: url(['http:', 'https:'], 'https://global-apis.com/v1'),
  GLOBAL_API_KEY: optionalSecret,
  ADMIN_API_KEY: z.string().min(24, 'at least 24 characters (use: openssl rand -hex 32)').optional(),
  SIM_PORT: port(4010),
  /** The simulator's answer length when max_tokens does not cut it shorter (benchmarks of long streams). */
  SIM_ANSWER_TOKENS: positiveInt(150),
  SIM_LATENCY_SCALE: z.coerce.number({ error: 'a number >= 0 (0 means no delay)' }).min(0, 'a number >= 0 (0 means no delay)').default(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_REQUEST_BYTES: positiveInt(256 * 1024),
  /** First-token deadline per attempt = max(FIRST_TOKEN_FLOOR_MS, model TTFT for the region x this multiple). */
  FIRST_TOKEN_FLOOR_MS: positiveInt(800),
  FIRST_TOKEN_TTFT_MULTIPLE: z.coerce.number({ error: 'a number > 0' }).positive('a number > 0').default(2),
  /** Longest silence between two chunks of a stream before it counts as a stall. */
  IDLE_TIMEOUT_MS: positiveInt(10_000),
  /** Longest a whole request may take, across all its attempts. */
  TOTAL_TIMEOUT_MS: positiveInt(300_000),
  /** How long a HELD ledger row lives without a checkpoint before the reaper settles it. */
  LEASE_MS: positiveInt(30_000),
  CHECKPOINT_INTERVAL_MS: positiveInt(1_000),
  /** Most sockets to the upstream at once: every open stream holds one (HTTP/1.1), so this caps concurrent streams. */
  UPSTREAM_MAX_CONNECTIONS: positiveInt(4_096),
  REAPER_INTERVAL_MS: positiveInt(5_000),
  /** Hard maximum age of cached API key, tenant and catalog state (the epoch invalidates it sooner). */
  CACHE_MAX_AGE_MS: positiveInt(5_000),
  /** Most idempotent retries one process lets wait for their first request; past it: RATE_LIMITED. */
  IDEMPOTENCY_MAX_WAITERS: positiveInt(1_000),
  /** Failed authentications (unknown or revoked keys) one client address may make per minute, across instances. */
  AUTH_FAILURES_PER_MINUTE: positiveInt(30),
  /** Browser origins allowed to call the API (comma-separated, e.g. https://app.example.com,http://localhost:5173). */
  CORS_ORIGINS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.string().regex(/^https?:\/\/[^/\s*]+$/, 'a comma-separated list of origins such as https://app.example.com (scheme, host and port; no path, no *)'),
      ),
    )
    .optional(),
  /** Most operations at once on one graphql-ws connection. */
  SUBSCRIPTIONS_PER_CONNECTION: positiveInt(100),
  /** Longest silence on an SSE or multipart stream before a heartbeat (at most 10 s, which proxies tolerate). */
  STREAM_HEARTBEAT_MS: digits('a whole number of milliseconds 100..10000')
    .pipe(z.number().min(100, 'at least 100').max(10_000, 'at most 10000'))
    .default(5_000),
  /** On SIGTERM, how long requests in flight may run on before they are ended with outcome SHUTDOWN. */
  DRAIN_TIMEOUT_MS: positiveInt(8_000),
  /** How often each instance re-applies settlements Redis has not confirmed (retried until they land). */
  GATE_APPLY_INTERVAL_MS: positiveInt(2_000),
  /** How often each instance compares the gate's spent with the ledger and repairs lasting drift. */
  RECONCILE_INTERVAL_MS: positiveInt(60_000),
  /**
   * Months of ledger rows kept besides the current month; older month partitions are dropped once their daily
   * rollups are verified equal to them (reports read those months from the rollups). Unset: kept forever.
   */
  LEDGER_RETENTION_MONTHS: digits('a whole number of months 1..1200').pipe(z.number().min(1, 'at least 1 month').max(1200, 'at most 1200 months')).optional(),
  /** How often each instance closes finished days into daily rollups (instances share the work by advisory locks). */
  ROLLUP_INTERVAL_MS: positiveInt(15 * 60_000),
  /** How often each instance deletes expired idempotency keys. */
  IDEMPOTENCY_PURGE_INTERVAL_MS: positiveInt(3600_000),
  /** Seed nodes of a Redis Cluster; when set the gate uses ioredis' Cluster client and REDIS_URL is not used. */
  REDIS_CLUSTER_NODES: clusterNodes,
  /** OTLP/HTTP traces endpoint (e.g. http://collector:4318); unset: tracing is off and costs nothing. */
  OTEL_EXPORTER_OTLP_ENDPOINT: url(['http:', 'https:']).optional(),
  OTEL_SERVICE_NAME: z.string().trim().min(1, 'a non-empty service name').default('llm-gateway'),
  /** Development and tests only: budget-alert webhooks may reach private, loopback and link-local addresses. */
  ALERT_WEBHOOKS_ALLOW_PRIVATE: z
    .enum(['true', 'false'], { error: 'true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  /** A PEM file of an extra CA that webhook receivers' certificates may chain to (added to the system's roots). */
  ALERT_WEBHOOK_CA_FILE: z.string().trim().min(1, 'a path to a PEM file').optional(),
  /** How often each instance publishes new budget events and makes the webhook attempts that are due. */
  ALERT_DELIVERY_INTERVAL_MS: positiveInt(1_000),
  /** Webhook attempts per event before it is given up (FAILED in the alert log). */
  ALERT_WEBHOOK_MAX_ATTEMPTS: positiveInt(8),
  /** The first retry's wait; each next one doubles (at most an hour). */
  ALERT_WEBHOOK_RETRY_BASE_MS: positiveInt(10_000),
  /** Connect timeout, and again the wait for the receiver's answer, per attempt. */
  ALERT_WEBHOOK_TIMEOUT_MS: positiveInt(5_000),
  /** How often each instance looks for budgets that run out before the month ends (one forecast per tenant a day). */
  ALERT_FORECAST_INTERVAL_MS: positiveInt(15 * 60_000),
});

export type Config = Readonly<
  Omit<z.infer<typeof schema>, 'ADMIN_API_KEY'> & {
    ADMIN_API_KEY: string;
    /** True when ADMIN_API_KEY was generated for this process (local demo only). */
    adminKeyGenerated: boolean;
    /** True when no GLOBAL_API_KEY is set: the server runs the embedded simulator as its upstream. */
    useSimulator: boolean;
    /** Allowed browser origins: CORS_ORIGINS; unset, any localhost origin outside production (null) and none in it. */
    corsOrigins: readonly string[] | null;
  }
>;

/** Reads and validates the environment. Throws ConfigError naming the first wrong variable(s). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty string means "unset" for every variable, as shells and compose files tend to pass them.
  const raw = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0]);
      const shown = SECRETS.has(name) ? '(hidden)' : JSON.stringify(raw[name] ?? '');
      return `  ${name}=${shown}: expected ${i.message}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  let adminKey = c.ADMIN_API_KEY;
  let adminKeyGenerated = false;
  if (!adminKey) {
    if (c.NODE_ENV === 'production') {
      throw new ConfigError(
        'ADMIN_API_KEY is not set: it is required in production. Set it to a long random secret, e.g. ADMIN_API_KEY=$(openssl rand -hex 32)',
      );
    }
    adminKey = `adm_${randomBytes(24).toString('base64url')}`;
    adminKeyGenerated = true;
  }
  return Object.freeze({
    ...c,
    ADMIN_API_KEY: adminKey,
    adminKeyGenerated,
    useSimulator: c.GLOBAL_API_KEY === undefined,
    corsOrigins: c.CORS_ORIGINS ?? (c.NODE_ENV === 'production' ? [] : null),
  });
}
