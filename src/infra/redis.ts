import Redis from 'ioredis';

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

/** Resolves once the client is ready, or rejects after `timeoutMs` with the reason. */
export function waitReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
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
