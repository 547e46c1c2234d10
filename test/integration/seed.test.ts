import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { seedCatalog } from '../../prisma/seed';
import { TEST_DATABASE_URL } from '../support/env';
import { gqlOk, startApp, TEST_ADMIN_KEY } from '../support/app';

/**
 * The seed against real Postgres, checked figure for figure against shared/guide/model-table.md. The tables below are
 * that file's tables, pasted as they stand (the expectations deliberately do not come from src/catalog).
 */
const MODEL_TABLE_MD = `
| step-3.5-flash | Step-3.5-Flash | StepFun | 120 | 80 | 0.15 |
| deepseek-v4-flash | DeepSeek V4 Flash | DeepSeek | 180 | 60 | 0.25 |
| hunyuan-turbos | Hunyuan-TurboS | Tencent | 200 | 55 | 0.28 |
| qwen3-8b | Qwen3-8B | Qwen | 150 | 70 | 0.01 |
| qwen3-32b | Qwen3-32B | Qwen | 250 | 45 | 0.28 |
| doubao-seed-lite | Doubao-Seed-Lite | ByteDance | 220 | 50 | 0.40 |
| hunyuan-turbo | Hunyuan-Turbo | Tencent | 280 | 42 | 0.57 |
| glm-4-32b | GLM-4-32B | Zhipu | 300 | 38 | 0.56 |
| qwen3.5-27b | Qwen3.5-27B | Qwen | 350 | 35 | 0.19 |
| deepseek-v4-pro | DeepSeek V4 Pro | DeepSeek | 400 | 30 | 0.78 |
| minimax-m2.5 | MiniMax M2.5 | MiniMax | 450 | 28 | 1.15 |
| glm-5 | GLM-5 | Zhipu | 500 | 25 | 1.92 |
| kimi-k2.5 | Kimi K2.5 | Moonshot | 600 | 20 | 3.00 |
| deepseek-r1 | DeepSeek-R1 | DeepSeek | 800 | 15 | 2.50 |
| qwen3.5-397b | Qwen3.5-397B | Qwen | 1200 | 10 | 2.34 |
`;
const REGION_TABLE_MD = `
| deepseek-v4-flash | 180 | 150 |
| qwen3-32b | 250 | 210 |
| glm-5 | 500 | 420 |
| kimi-k2.5 | 600 | 480 |
`;
const PROFILE_TABLE_MD = `
| fast_classify | qwen3-8b | classification, short reformatting |
| chat_default | deepseek-v4-flash | default user-facing chat |
| chat_speed | step-3.5-flash | chat where every millisecond counts |
| long_form | deepseek-v4-pro | long documents, the user waits |
| deep_reasoning | minimax-m2.5 | "think harder" requests |
`;
const LIMITS_TABLE_MD = `
| fast_classify | 256 | 1024 |
| chat_default | 1024 | 4096 |
| chat_speed | 1024 | 4096 |
| long_form | 4096 | 16384 |
| deep_reasoning | 4096 | 16384 |
`;
const FALLBACK_TABLE_MD = `
| deepseek-v4-flash | hunyuan-turbos, qwen3-32b |
| step-3.5-flash | deepseek-v4-flash |
| deepseek-v4-pro | hunyuan-turbo |
| minimax-m2.5 | glm-5, kimi-k2.5 |
`;

const rows = (md: string) =>
  md
    .trim()
    .split('\n')
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );

/** "$ per 1M" as written ("1.92") to integer micro-dollars, without a float. */
function micros(usd: string): bigint {
  const m = /^(\d+)\.(\d{2})$/.exec(usd);
  if (!m) throw new Error(`unexpected price ${usd}`);
  return BigInt(m[1]!) * 1_000_000n + BigInt(m[2]!) * 10_000n;
}

const asia = new Map(rows(REGION_TABLE_MD).map(([id, us, as]) => [id!, { us: Number(us), asia: Number(as) }]));
const EXPECTED_MODELS = rows(MODEL_TABLE_MD).map(([id, name, provider, ttft, tps, price]) => ({
  id: id!,
  name: name!,
  provider: provider!,
  ttftUsEastMs: Number(ttft),
  ttftAsiaMs: asia.get(id!)?.asia ?? null,
  tokensPerSecond: Number(tps),
  outputMicrosPerMillion: micros(price!),
  inputMicrosPerMillion: null,
}));
const limits = new Map(rows(LIMITS_TABLE_MD).map(([p, def, cap]) => [p!, { defaultMaxTokens: Number(def), maxTokensCap: Number(cap) }]));
const EXPECTED_PROFILES = rows(PROFILE_TABLE_MD).map(([name, modelId, why]) => ({ name: name!, modelId: modelId!, description: why!, ...limits.get(name!)! }));
const EXPECTED_FALLBACKS = Object.fromEntries(rows(FALLBACK_TABLE_MD).map(([m, chain]) => [m!, chain!.split(',').map((s) => s.trim())]));

test('the transcription itself: 15 models, 4 Asia figures, 5 profiles with limits, 4 chains', () => {
  expect(EXPECTED_MODELS).toHaveLength(15);
  expect(new Set(EXPECTED_MODELS.map((m) => m.id)).size).toBe(15);
  // The region table's US East column agrees with the main table.
  for (const [id, r] of asia) expect(EXPECTED_MODELS.find((m) => m.id === id)?.ttftUsEastMs).toBe(r.us);
  expect(EXPECTED_MODELS.filter((m) => m.ttftAsiaMs !== null).map((m) => [m.id, m.ttftAsiaMs])).toEqual([
    ['deepseek-v4-flash', 150],
    ['qwen3-32b', 210],
    ['glm-5', 420],
    ['kimi-k2.5', 480],
  ]);
  expect(EXPECTED_MODELS.find((m) => m.id === 'glm-5')?.outputMicrosPerMillion).toBe(1_920_000n);
  expect(EXPECTED_MODELS.find((m) => m.id === 'qwen3-8b')?.outputMicrosPerMillion).toBe(10_000n);
  expect(EXPECTED_MODELS.find((m) => m.id === 'kimi-k2.5')?.outputMicrosPerMillion).toBe(3_000_000n);
  expect(EXPECTED_PROFILES).toHaveLength(5);
  expect(EXPECTED_PROFILES.every((p) => Number.isInteger(p.defaultMaxTokens) && Number.isInteger(p.maxTokensCap))).toBe(true);
  expect(Object.keys(EXPECTED_FALLBACKS)).toHaveLength(4);
});

const modelFields = {
  id: true,
  name: true,
  provider: true,
  ttftUsEastMs: true,
  ttftAsiaMs: true,
  tokensPerSecond: true,
  outputMicrosPerMillion: true,
  inputMicrosPerMillion: true,
} as const;

/** Everything the seed writes, as it stands in the database. */
async function catalogState(db: Db) {
  return {
    models: await db.model.findMany({ orderBy: { id: 'asc' } }),
    prices: await db.modelPrice.findMany({ orderBy: { id: 'asc' } }),
    profiles: await db.profile.findMany({ orderBy: { name: 'asc' } }),
    fallbacks: await db.modelFallback.findMany({ orderBy: [{ modelId: 'asc' }, { position: 'asc' }] }),
  };
}

async function expectCatalogMatchesTheTable(db: Db, opts: { exact: boolean }) {
  const ids = EXPECTED_MODELS.map((m) => m.id);
  const models = await db.model.findMany({ where: opts.exact ? {} : { id: { in: ids } }, select: modelFields });
  const byId = new Map(models.map((m) => [m.id, m]));
  expect(models).toHaveLength(15);
  for (const e of EXPECTED_MODELS) expect(byId.get(e.id)).toEqual(e);

  const profiles = await db.profile.findMany({ where: opts.exact ? {} : { name: { in: EXPECTED_PROFILES.map((p) => p.name) } } });
  expect(profiles).toHaveLength(5);
  for (const e of EXPECTED_PROFILES) expect(profiles.find((p) => p.name === e.name)).toEqual(e);

  const fallbacks = await db.modelFallback.findMany({ orderBy: [{ modelId: 'asc' }, { position: 'asc' }] });
  const chains: Record<string, string[]> = {};
  for (const f of fallbacks) (chains[f.modelId] ??= []).push(f.fallbackModelId);
  expect(chains).toEqual(EXPECTED_FALLBACKS);
  // Positions are 0..n-1: the order is the table's order.
  for (const [m, chain] of Object.entries(EXPECTED_FALLBACKS)) {
    expect(fallbacks.filter((f) => f.modelId === m).map((f) => f.position)).toEqual(chain.map((_, i) => i));
  }
}

describe('on the test database (seeded by the global setup)', () => {
  const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  afterAll(() => db.$disconnect());

  test('the 15 models, 5 profiles and 4 fallback chains match model-table.md figure for figure; input prices empty', async () => {
    await expectCatalogMatchesTheTable(db, { exact: false });
  });

  test('seeding again adds nothing and changes nothing', async () => {
    const before = await catalogState(db);
    expect(await seedCatalog(db)).toEqual({ models: 0, profiles: 0, fallbacks: 0 });
    expect(await catalogState(db)).toEqual(before);
  });
});

describe('on a brand-new database', () => {
  const name = `llm_gateway_seed_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = `postgresql://postgres@127.0.0.1:5432/${name}`;
  let db: Db;

  beforeAll(async () => {
    const root = path.resolve(__dirname, '../..');
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--experimental-wasm-modules', '--no-warnings', 'prisma/migrate.mjs', 'apply'],
        { cwd: root, env: { ...process.env, DATABASE_URL: url }, timeout: 30_000 },
        (err, _out, stderr) => (err ? reject(new Error(`migrate failed: ${stderr}`)) : resolve()),
      ),
    );
    db = createPrisma(url, { max: 2 });
  });
  afterAll(async () => {
    await db?.$disconnect();
    const c = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });

  test('the first seed adds exactly the table: 15 models, 5 profiles, 6 fallback rows, a seed price per model', async () => {
    expect(await seedCatalog(db)).toEqual({ models: 15, profiles: 5, fallbacks: 6 });
    await expectCatalogMatchesTheTable(db, { exact: true });
    const prices = await db.modelPrice.findMany({ orderBy: { modelId: 'asc' } });
    expect(prices.map((p) => [p.modelId, p.outputMicrosPerMillion, p.inputMicrosPerMillion, p.source])).toEqual(
      [...EXPECTED_MODELS].sort((a, b) => (a.id < b.id ? -1 : 1)).map((m) => [m.id, m.outputMicrosPerMillion, null, 'seed']),
    );
    const models = await db.model.findMany();
    expect(models.every((m) => m.priceSetByAdmin === false)).toBe(true);
  });

  test('a second seed adds nothing and changes nothing', async () => {
    const before = await catalogState(db);
    expect(await seedCatalog(db)).toEqual({ models: 0, profiles: 0, fallbacks: 0 });
    expect(await catalogState(db)).toEqual(before);
  });

  test('a price an admin set (setModelPrice over the API) survives a re-seed', async () => {
    const app = await startApp({ DATABASE_URL: url });
    try {
      const d = await gqlOk<any>(
        app.url,
        TEST_ADMIN_KEY,
        `mutation { setModelPrice(model: "glm-5", outputUsdPerMillion: "2.5", inputUsdPerMillion: "0.75") { id outputUsdPerMillion inputUsdPerMillion } }`,
      );
      expect(d.setModelPrice).toEqual({ id: 'glm-5', outputUsdPerMillion: '2.500000', inputUsdPerMillion: '0.750000' });
    } finally {
      await app.stop();
    }
    const before = await catalogState(db);
    const glm = before.models.find((m) => m.id === 'glm-5')!;
    expect([glm.outputMicrosPerMillion, glm.inputMicrosPerMillion, glm.priceSetByAdmin]).toEqual([2_500_000n, 750_000n, true]);

    expect(await seedCatalog(db)).toEqual({ models: 0, profiles: 0, fallbacks: 0 });

    const after = await catalogState(db);
    expect(after).toEqual(before);
    const glmAfter = after.models.find((m) => m.id === 'glm-5')!;
    expect([glmAfter.outputMicrosPerMillion, glmAfter.inputMicrosPerMillion]).toEqual([2_500_000n, 750_000n]);
    // History: the seed price, then the admin's; the re-seed wrote no third row.
    expect(after.prices.filter((p) => p.modelId === 'glm-5').map((p) => [p.source, p.outputMicrosPerMillion])).toEqual([
      ['seed', 1_920_000n],
      ['admin', 2_500_000n],
    ]);
  });
});
