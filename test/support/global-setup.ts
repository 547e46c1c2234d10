import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createPrisma } from '../../src/infra/prisma';
import { seedCatalog } from '../../prisma/seed';
import { TEST_DATABASE_URL } from './env';

/** Once per test run: the test database exists, carries every migration and the seed. */
export default async function globalSetup(): Promise<void> {
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
