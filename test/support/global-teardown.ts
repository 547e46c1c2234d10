import type { TestCluster } from './redis-cluster';

/** Stops the Redis Cluster global-setup started for TEST_REDIS_CLUSTER=1, if any. */
export default async function globalTeardown(): Promise<void> {
  const cluster = (globalThis as { __testRedisCluster?: TestCluster }).__testRedisCluster;
  await cluster?.stop();
}
