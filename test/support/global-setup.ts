import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createPrisma } from '../../src/infra/prisma';
import { seedCatalog } from '../../prisma/seed';
import { TEST_DATABASE_URL } from './env';
import { startRedisCluster } from './redis-cluster';

/** Once per test run: the test database exists, carries every migration and the seed. */
export default async function globalSetup(): Promise<void> {
  // TEST_REDIS_CLUSTER=1: the suites run on a real Redis Cluster started here (stopped by global-teardown).
  if (process.env.TEST_REDIS_CLUSTER === '1' && !process.env.TEST_REDIS_CLUSTER_NODES) {
    const cluster = await startRedisCluster();
    (globalThis as { __testRedisCluster?: unknown }).__testRedisCluster = cluster;
    process.env.TEST_REDIS_CLUSTER_NODES = cluster.seeds;
  }
  const root = path.resolve(__dirname, '../..');
  execFileSync(process.execPath, ['--experimental-wasm-modules', '--no-warnings', 'prisma/migrate.mjs', 'apply'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL },
    stdio: 'pipe',
  });
  const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  try {
    await seedCatalog(db);
  } finally {
    await db.$disconnect();
  }
}
