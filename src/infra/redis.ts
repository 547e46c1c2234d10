import Redis, { Cluster, Command } from 'ioredis';
import { guardFailovers, type FailoverGuard } from './cluster-failover';
import type { Logger } from './logger';

/**
 * A Redis client that fails fast: commands issued while Redis is down reject at once instead of queueing, so
 * admission fails closed (SERVICE_UNAVAILABLE) rather than hanging a request.
 */
export function createRedis(url: string, opts: { lazyConnect?: boolean; name?: string; onError?: (e: Error) => void } = {}): Redis {
  const redis = new Redis(url, {
    lazyConnect: opts.lazyConnect ?? false,
    connectionName: opts.name ?? 'llm-gateway',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  // Without a listener ioredis prints every reconnect failure with a stack; the caller decides what to log.
  redis.on('error', opts.onError ?? (() => undefined));
  return redis;
}

export interface ClusterSeed {
  readonly host: string;
  readonly port: number;
}

/**
 * The gate's Redis: one server (`REDIS_URL`) or a Redis Cluster (`REDIS_CLUSTER_NODES`). Both fail fast like
 * `createRedis`. On a cluster every command with keys goes to its slot's master (each gate script touches one
 * slot, the tenant's `{tenantId}` hash tag); ioredis' internal retries on failover are off, so a request whose
 * master is gone fails closed at once instead of waiting for the promotion.
 */
export type GateRedis =
  | { readonly kind: 'single'; readonly client: Redis; readonly limits: Redis }
  | { readonly kind: 'cluster'; readonly client: Cluster; readonly limits: FencedScripts; readonly guard: FailoverGuard };

/** EVALSHA / EVAL that reject while a failover is being handled (see cluster-failover.ts). */
export type FencedScripts = Pick<Redis, 'evalsha' | 'eval'>;

export function createGateRedis(
  target: { url: string; clusterNodes?: readonly ClusterSeed[] | undefined },
  opts: {
    name?: string;
    logger: Logger;
    keyPrefix?: string;
    /**
     * Scripts that pass the failover fence: ones that only apply what Postgres already decided (settlements,
     * releases). Run against a promoted master before its sweep they are swept with the rest and rebuilt from the
     * ledger; after it they are what keeps the state exact, e.g. the release of a refused request's hold that
     * another instance's reseed restored from its write-ahead row.
     */
    unfencedScripts?: ReadonlyArray<{ readonly sha: string; readonly source: string }>;
  },
): GateRedis {
  const onError = (e: Error) => opts.logger.debug({ err: e }, 'redis connection error');
  if (!target.clusterNodes?.length) {
    const client = createRedis(target.url, { name: opts.name, onError });
    return { kind: 'single', client, limits: client };
  }
  const client = new Cluster([...target.clusterNodes], {
    enableOfflineQueue: false,
    enableReadyCheck: true,
    scaleReads: 'master',
    // No internal retries: a command whose master is unreachable rejects now (the request gets SERVICE_UNAVAILABLE)
    // rather than being replayed later onto a promoted replica the failover guard has not swept yet.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 0,
    maxRedirections: 4,
    // Notice a promotion within about a second even when no command is failing.
    slotsRefreshInterval: 1_000,
    slotsRefreshTimeout: 1_000,
    clusterRetryStrategy: (times) => Math.min(times * 200, 2_000),
    redisOptions: {
      connectionName: opts.name ?? 'llm-gateway',
      maxRetriesPerRequest: 1,
      connectTimeout: 3_000,
    },
  });
  client.on('error', onError);
  client.on('node error', onError);
  // Node connections are lazy, and a command to a node still connecting is refused (no offline queue): connect
  // every node as soon as it joins the pool, so the first burst of requests after start or failover is not refused.
  client.on('+node', (node: Redis) => {
    if (node.status === 'wait') node.connect().catch(() => undefined);
  });
  const guard = guardFailovers(client, { logger: opts.logger, keyPrefix: opts.keyPrefix });
  // The slot is computed the way ioredis routes the command, so the fence and the routing cannot disagree.
  const passShas = new Set((opts.unfencedScripts ?? []).map((x) => x.sha));
  const passSources = new Set((opts.unfencedScripts ?? []).map((x) => x.source));
  const limits: FencedScripts = {
    evalsha: ((...args: Parameters<Redis['evalsha']>) => {
      if (!passShas.has(String(args[0]))) guard.check(new Command('evalsha', args as never));
      return client.evalsha(...args);
    }) as Redis['evalsha'],
    eval: ((...args: Parameters<Redis['eval']>) => {
      if (!passSources.has(String(args[0]))) guard.check(new Command('eval', args as never));
      return client.eval(...args);
    }) as Redis['eval'],
  };
  return { kind: 'cluster', client, limits, guard };
}

/** Readiness: one server answers PING; on a cluster every master does (while one is down, the instance is not ready). */
export async function pingGate(gate: GateRedis): Promise<void> {
  if (gate.kind === 'single') {
    await gate.client.ping();
    return;
  }
  const masters = gate.client.nodes('master');
  if (masters.length === 0) throw new Error('no Redis Cluster master connected');
  await Promise.all(masters.map((m) => m.ping()));
}

/** Where the gate's Redis is, for start-up messages. */
export function describeGate(target: { url: string; clusterNodes?: readonly ClusterSeed[] | undefined }): string {
  return target.clusterNodes?.length ? `the Redis Cluster seeded by ${target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}` : target.url;
}

/** Resolves once the client is ready, or rejects after `timeoutMs` with the reason. */
export function waitReady(redis: Redis | Cluster, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: unknown;
    const onError = (e: unknown) => (lastError = e);
    const timer = setTimeout(() => {
      cleanup();
      reject(lastError ?? new Error(`not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}
