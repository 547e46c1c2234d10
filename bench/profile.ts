/**
 * `npm run bench:profile`: where the gateway's CPU goes on the hot path. The gateway runs as a child under
 * `node --cpu-prof` (one child per concurrency) while a closed loop sends `chat` mutations with 8-chunk answers from
 * the simulator; each profile's measured window is summarised by area (graphql-js, Apollo + express, ioredis, pg,
 * undici, JSON, GC, the project's own folders) into bench/results/profile-<date>.md (+ .json). Then the gateway's
 * CPU per refused request (rate and budget), without the profiler. Options (flag or environment variable):
 *   --seconds / BENCH_PROFILE_SECONDS (8), --warmup (2), --concurrency (1,16), --answer-tokens (8), --refusals (2000)
 *   --out / BENCH_OUT (bench/results)
 *   --database-url / BENCH_DATABASE_URL (postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_profile, dropped and recreated)
 *   --redis-url / BENCH_REDIS_URL (redis://127.0.0.1:6379/14)
 * Run it on a quiet machine: anything else on the cores shows up as queueing, not in the profile.
 */
import path from 'node:path';
import { list, num, pick } from './lib/options';
import { runProfile } from './lib/profile-run';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const root = path.resolve(__dirname, '..');
  const { mdPath, jsonPath } = await runProfile({
    seconds: num(argv, 'seconds', 'BENCH_PROFILE_SECONDS', 8),
    warmupSeconds: num(argv, 'warmup', 'BENCH_PROFILE_WARMUP', 2),
    concurrency: list(argv, 'concurrency', 'BENCH_PROFILE_CONCURRENCY', '1,16'),
    answerTokens: num(argv, 'answer-tokens', 'BENCH_PROFILE_ANSWER_TOKENS', 8),
    refusals: num(argv, 'refusals', 'BENCH_PROFILE_REFUSALS', 2000),
    outDir: pick(argv, 'out', 'BENCH_OUT', `${root}/bench/results`),
    databaseUrl: pick(argv, 'database-url', 'BENCH_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_profile'),
    redisUrl: pick(argv, 'redis-url', 'BENCH_REDIS_URL', 'redis://127.0.0.1:6379/14'),
    adminKey: pick(argv, 'admin-key', 'BENCH_ADMIN_KEY', 'bench-admin-key-0123456789abcdef0123456789'),
  });
  process.stdout.write(`profile: ${mdPath}\nraw: ${jsonPath}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:profile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
