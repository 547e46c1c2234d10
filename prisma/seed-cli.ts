import { loadConfig } from '../src/config';
import { createPrisma } from '../src/infra/prisma';
import { seedCatalog } from './seed';

async function main() {
  const db = createPrisma(loadConfig().DATABASE_URL);
  try {
    const r = await seedCatalog(db);
    console.log(`seeded: ${r.models} model(s), ${r.profiles} profile(s), ${r.fallbacks} fallback link(s) added`);
  } finally {
    await db.$disconnect();
  }
}
main().catch((e) => {
  console.error(`seed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
