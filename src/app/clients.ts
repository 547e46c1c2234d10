import type { Cluster, Redis } from 'ioredis';
import type { Config } from '../config';
import { createPrisma, type Db } from '../infra/prisma';
import { createSqlPool, type SqlPool } from '../infra/postgres';
import { createGateRedis, describeGate, pingGate, waitReady, type GateRedis } from '../infra/redis';
import type { Logger } from '../infra/logger';
import { SCRIPTS } from '../limits/scripts';
import { startSimulator, type Simulator } from '../simulator/server';
import { makeUpstreamClient, type UpstreamClient } from '../upstream';
import { startTracing, traceUpstream, type Tracing } from '../telemetry';
import type { Closers } from './closers';

/** Every connection the process holds: Postgres, Redis (gate and pub/sub), the upstream, tracing. */
export interface Clients {
  readonly db: Db;
  readonly sql: SqlPool;
  readonly gate: GateRedis;
  /** The gate's client for plain commands (epoch, auth failures, publishing). */
  readonly redis: Redis | Cluster;
  /** One subscriber connection per process carries every idempotent retry's wake-up. */
  readonly subscriber: Redis;
  readonly upstream: UpstreamClient;
  readonly upstreamUrl: string;
  /** The embedded upstream when GLOBAL_API_KEY is unset. */
  readonly simulator: Simulator | null;
  /** On only with OTEL_EXPORTER_OTLP_ENDPOINT; off (null), nothing is wrapped. */
  readonly tracing: Tracing | null;
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** Opens every client; fails fast, naming the URL, when Postgres or Redis cannot be reached. */
export async function openClients(config: Config, logger: Logger, closers: Closers): Promise<Clients> {
  const db = createPrisma(config.DATABASE_URL);
  const sql = createSqlPool(config.DATABASE_URL);
  const redisTarget = { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES };
  // Settlements apply what Postgres decided: they pass a Redis Cluster failover fence (see infra/redis.ts).
  const gate = createGateRedis(redisTarget, { logger, unfencedScripts: [SCRIPTS.settle] });
  const redis = gate.client;
  closers.push(
    () => db.$disconnect(),
    () => sql.end(),
    async () => redis.disconnect(),
  );

  await db.$queryRaw`SELECT 1`.catch((e) => {
    throw new StartupError(`cannot reach Postgres at ${safeUrl(config.DATABASE_URL)} (${(e as Error).message}). Start it, e.g. docker compose up -d postgres`);
  });
  await waitReady(redis, 5_000)
    .then(() => pingGate(gate))
    .catch((e) => {
      throw new StartupError(
        `cannot reach Redis at ${gate.kind === 'single' ? safeUrl(config.REDIS_URL) : describeGate(redisTarget)} (${(e as Error).message}). Start it, e.g. docker compose up -d redis`,
      );
    });

  let simulator: Simulator | null = null;
  let upstreamUrl = config.GLOBAL_API_BASE_URL;
  if (config.useSimulator) {
    const sim = await startSimulator({ port: 0, latencyScale: config.SIM_LATENCY_SCALE });
    closers.push(() => sim.close());
    simulator = sim;
    upstreamUrl = sim.url;
    logger.info({ url: sim.url }, 'GLOBAL_API_KEY is unset: serving from the embedded upstream simulator');
  }

  const tracing = startTracing({ endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: config.OTEL_SERVICE_NAME });
  if (tracing) closers.push(() => tracing.shutdown());
  const untracedUpstream = makeUpstreamClient({
    baseUrl: upstreamUrl,
    apiKey: config.GLOBAL_API_KEY ?? 'simulator',
    logger,
    connections: config.UPSTREAM_MAX_CONNECTIONS,
  });
  const upstream = tracing ? traceUpstream(untracedUpstream, tracing, upstreamUrl) : untracedUpstream;
  closers.push(() => upstream.close());

  // A Cluster's duplicate subscribes the same way (classic pub/sub reaches every node), with the same events.
  const subscriber: Redis = gate.kind === 'single' ? gate.client.duplicate() : (gate.client.duplicate() as unknown as Redis);
  subscriber.on('error', (e) => logger.debug({ err: e }, 'redis subscriber connection error'));
  closers.push(async () => subscriber.disconnect());
  await waitReady(subscriber, 5_000);

  return { db, sql, gate, redis, subscriber, upstream, upstreamUrl, simulator, tracing };
}

/** A URL for logs and messages: never with its password. */
function safeUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
