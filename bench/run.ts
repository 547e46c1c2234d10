/**
 * `npm run bench`: gateway overhead against a direct upstream call and a bare proxy, streamed time to first token,
 * many concurrent streams and the parts alone. Options (flag or environment variable):
 *   --seconds / BENCH_SECONDS (5)             measured seconds per cell, each after --warmup / BENCH_WARMUP (1)
 *   --concurrency / BENCH_CONCURRENCY (1,16,64) non-streamed concurrencies
 *   --stream-concurrency / BENCH_STREAM_CONCURRENCY (1,16)
 *   --streams / BENCH_STREAMS (1000)          subscriptions held at once (0 skips); --hold-seconds (10); --stream-scale (8)
 *   --micro-seconds / BENCH_MICRO_SECONDS (2) per part
 *   --only / BENCH_ONLY (nonstream,stream,hold,parts)
 *   --out / BENCH_OUT (bench/results)         --markdown / BENCH_MARKDOWN (BENCHMARKS.md, "none" to skip)
 *   --database-url / BENCH_DATABASE_URL (postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_run, dropped and recreated)
 *   --redis-url / BENCH_REDIS_URL (redis://127.0.0.1:6379/14)
 *   --cpu-prof / BENCH_CPU_PROF (dir)         run the gateway children with node --cpu-prof into that directory
 * Progress goes to stderr; a summary of the goals to stdout.
 */
import path from 'node:path';
import { parseBenchOptions } from './lib/options';
import { runBench } from './lib/bench';

async function main(): Promise<void> {
  const opts = parseBenchOptions(process.argv.slice(2), path.resolve(__dirname, '..'));
  const { results, jsonPath } = await runBench(opts);
  const lines = results.goals.map((g) => `${g.pass === null ? 'n/a ' : g.pass ? 'pass' : 'MISS'}  ${g.goal}: ${g.measured} (goal ${g.target})`);
  process.stdout.write(`${lines.join('\n')}\nresults: ${jsonPath}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
