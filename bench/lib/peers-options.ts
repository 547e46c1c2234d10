import os from 'node:os';
import path from 'node:path';
import { flag, list, num, pick } from './options';

export const TOOLS = ['auto', 'wrk', 'autocannon'] as const;
export type ToolChoice = (typeof TOOLS)[number];

export interface PeersOptions {
  /** Measured seconds per non-streamed cell (wrk and autocannon take whole seconds), after `warmupSeconds`. */
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Seconds of c=16 load per target before its first measurement, so JIT-compiled servers are measured warm. */
  readonly prewarmSeconds: number;
  readonly streamSeconds: number;
  readonly streamWarmupSeconds: number;
  readonly concurrency: number[];
  readonly streamConcurrency: number[];
  /** Answer lengths in tokens (max_tokens; the simulator streams one chunk per token). */
  readonly answers: number[];
  readonly portkey: boolean;
  readonly pin: boolean;
  readonly tool: ToolChoice;
  /** May the script install a missing load generator (apt-get wrk, or autocannon from npm into the scratch folder)? */
  readonly install: boolean;
  /** Where Portkey and autocannon are installed (outside the project; reused by later runs). */
  readonly scratchDir: string;
  readonly outDir: string;
  /** BENCHMARKS.md whose peers section is refreshed, or null. */
  readonly markdown: string | null;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly adminKey: string;
  readonly quiet: boolean;
}

/** Flags win over environment variables (BENCH_PEERS_*, and the BENCH_* of `npm run bench` for shared services). */
export function parsePeersOptions(argv: readonly string[], root: string): PeersOptions {
  const seconds = num(argv, 'duration', 'BENCH_PEERS_SECONDS', 10);
  const warmup = num(argv, 'warmup', 'BENCH_PEERS_WARMUP', 2);
  for (const [name, v] of [
    ['duration', seconds],
    ['warmup', warmup],
  ] as const) {
    if (!Number.isInteger(v) || (name === 'duration' && v < 1)) throw new Error(`--${name}: wrk and autocannon take whole seconds (duration >= 1), got ${v}`);
  }
  const tool = pick(argv, 'tool', 'BENCH_PEERS_TOOL', 'auto') as ToolChoice;
  if (!TOOLS.includes(tool)) throw new Error(`--tool: expected one of ${TOOLS.join(', ')}, got "${tool}"`);
  const md = pick(argv, 'markdown', 'BENCH_PEERS_MARKDOWN', `${root}/BENCHMARKS.md`);
  return {
    seconds,
    warmupSeconds: warmup,
    prewarmSeconds: Math.round(num(argv, 'prewarm', 'BENCH_PEERS_PREWARM', 5)),
    streamSeconds: num(argv, 'stream-duration', 'BENCH_PEERS_STREAM_SECONDS', 5),
    streamWarmupSeconds: num(argv, 'stream-warmup', 'BENCH_PEERS_STREAM_WARMUP', 1),
    concurrency: list(argv, 'concurrency', 'BENCH_PEERS_CONCURRENCY', '1,16'),
    streamConcurrency: list(argv, 'stream-concurrency', 'BENCH_PEERS_STREAM_CONCURRENCY', '1,16'),
    answers: list(argv, 'answers', 'BENCH_PEERS_ANSWERS', '8,150'),
    portkey: flag(argv, 'no-portkey') === undefined && !process.env.BENCH_PEERS_NO_PORTKEY,
    pin: flag(argv, 'no-pin') === undefined && !process.env.BENCH_PEERS_NO_PIN,
    tool,
    install: flag(argv, 'no-install') === undefined,
    scratchDir: pick(argv, 'scratch', 'BENCH_PEERS_SCRATCH', path.join(os.tmpdir(), 'llm-gateway-bench-peers')),
    outDir: pick(argv, 'out', 'BENCH_OUT', `${root}/bench/results`),
    markdown: md === 'none' || md === '' ? null : md,
    databaseUrl: pick(argv, 'database-url', 'BENCH_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_peers'),
    redisUrl: pick(argv, 'redis-url', 'BENCH_REDIS_URL', 'redis://127.0.0.1:6379/14'),
    adminKey: pick(argv, 'admin-key', 'BENCH_ADMIN_KEY', 'bench-admin-key-0123456789abcdef0123456789'),
    quiet: pick(argv, 'quiet', 'BENCH_QUIET', '') !== '',
  };
}
