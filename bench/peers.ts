/**
 * `npm run bench:peers`: the gateway side by side with its peers in one run: a direct call, a bare undici hop, a
 * bare Apollo 5 + graphql-ws hop, Portkey 1.15.2 (installed into a scratch folder) and the gateway with every check
 * on, at 8- and 150-token answers. Options (flag or environment variable; see BENCHMARKS.md):
 *   --duration / BENCH_PEERS_SECONDS (10)       measured whole seconds per non-streamed cell, after --warmup (2)
 *   --prewarm (5)                               seconds of c=16 load per target before its first measurement
 *   --stream-duration (5), --stream-warmup (1)  per streamed cell
 *   --concurrency (1,16), --stream-concurrency (1,16), --answers (8,150)
 *   --no-portkey, --no-pin, --no-install, --tool auto|wrk|autocannon
 *   --scratch (<tmp>/llm-gateway-bench-peers)   where Portkey and autocannon are installed
 *   --out / BENCH_OUT (bench/results)           --markdown (BENCHMARKS.md, "none" to skip)
 *   --database-url / BENCH_DATABASE_URL (postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_peers, dropped and recreated)
 *   --redis-url / BENCH_REDIS_URL (redis://127.0.0.1:6379/14)
 * Progress goes to stderr; the table and the goals to stdout. Exits 1 when a target could not be measured.
 */
import path from 'node:path';
import { parsePeersOptions } from './lib/peers-options';
import { runPeers } from './lib/peers-run';

async function main(): Promise<void> {
  const opts = parsePeersOptions(process.argv.slice(2), path.resolve(__dirname, '..'));
  const { results, jsonPath, mdPath } = await runPeers(opts);
  const goals = results.goals.map((g) => `${g.pass === null ? 'n/a ' : g.pass ? 'pass' : 'MISS'}  ${g.goal}: ${g.measured} (goal ${g.target})`);
  process.stdout.write(`${goals.join('\n')}\nresults: ${jsonPath}\ntable: ${mdPath}\n`);
  if (Object.keys(results.skipped).length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:peers failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
