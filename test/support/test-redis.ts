import Redis, { Cluster } from 'ioredis';
import { TEST_REDIS_CLUSTER_NODES, TEST_REDIS_URL } from './env';

/**
 * The tests' own Redis client: the test server's database (TEST_REDIS_URL), or, when the suites run on a Redis
 * Cluster (TEST_REDIS_CLUSTER=1), a Cluster client dressed as a Redis: the keyless admin commands tests use to
 * inspect and reset state (FLUSHDB, KEYS, SCRIPT EXISTS) go to every master instead of a random one.
 */
export function testRedis(connectionName?: string): Redis {
  if (!TEST_REDIS_CLUSTER_NODES) return new Redis(TEST_REDIS_URL, { connectionName });
  const cluster = new Cluster(
    TEST_REDIS_CLUSTER_NODES.split(',').map((hp) => ({ host: hp.split(':')[0]!, port: Number(hp.split(':')[1]) })),
    { redisOptions: { connectionName } },
  );
  return asSingleRedis(cluster);
}

function asSingleRedis(cluster: Cluster): Redis {
  const masters = async (): Promise<Redis[]> => {
    if (cluster.status !== 'ready') await new Promise((r) => cluster.once('ready', r));
    return cluster.nodes('master');
  };
  const fanOut: Record<string, (...args: any[]) => Promise<unknown>> = {
    flushdb: async () => (await Promise.all((await masters()).map((m) => m.flushall())), 'OK'),
    flushall: async () => (await Promise.all((await masters()).map((m) => m.flushall())), 'OK'),
    keys: async (pattern: string) => (await Promise.all((await masters()).map((m) => m.keys(pattern)))).flat(),
    script: async (sub: string, ...args: string[]) => {
      const replies = await Promise.all((await masters()).map((m) => (m.script as any)(sub, ...args)));
      // EXISTS: known where any master knows it (EVAL caches a script on the one master it ran on).
      if (String(sub).toUpperCase() === 'EXISTS') return args.map((_, i) => (replies.some((r: number[]) => r[i] === 1) ? 1 : 0));
      return replies[0];
    },
  };
  return new Proxy(cluster, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && prop in fanOut) return fanOut[prop];
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as unknown as Redis;
}
