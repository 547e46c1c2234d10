/** Flags (--name value or --name=value) win over environment variables, which win over defaults. */
export function flag(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) {
      const v = argv[i + 1];
      return v === undefined || v.startsWith('--') ? 'true' : v;
    }
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function pick(argv: readonly string[], name: string, envName: string, def: string): string {
  return flag(argv, name) ?? (process.env[envName] || undefined) ?? def;
}

export function num(argv: readonly string[], name: string, envName: string, def: number): number {
  const raw = pick(argv, name, envName, String(def));
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} / ${envName}: expected a number >= 0, got "${raw}"`);
  return v;
}

export function list(argv: readonly string[], name: string, envName: string, def: string): number[] {
  const raw = pick(argv, name, envName, def);
  const out = raw.split(',').map((s) => Number(s.trim()));
  if (!out.length || out.some((v) => !Number.isInteger(v) || v < 1))
    throw new Error(`--${name} / ${envName}: expected positive integers separated by commas, got "${raw}"`);
  return out;
}

export interface BenchOptions {
  /** Measured seconds per cell (each after a warm-up). */
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: number[];
  readonly streamConcurrency: number[];
  /** Subscriptions held open at once in the many-streams part; 0 skips it. */
  readonly streams: number;
  readonly holdSeconds: number;
  /** SIM_LATENCY_SCALE of the slowed simulator of the many-streams part. */
  readonly streamScale: number;
  readonly openConcurrency: number;
  readonly microSeconds: number;
  /** Directory for <date>.json. */
  readonly outDir: string;
  /** BENCHMARKS.md to refresh, or null. */
  readonly markdown: string | null;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly adminKey: string;
  /** Directory for the gateway's --cpu-prof output, or null. */
  readonly cpuProfDir: string | null;
  /** Phases to run: nonstream, stream, hold, parts. */
  readonly only: ReadonlySet<string>;
  readonly quiet: boolean;
  /** Suffix of the results file (<date>-<tag>.json), for diagnostic runs. */
  readonly tag: string | null;
  /** Diagnostic: the bench database's synchronous_commit (ALTER DATABASE ... SET), or null for the server default. */
  readonly pgSyncCommit: string | null;
}

export const PHASES = ['nonstream', 'stream', 'hold', 'parts'] as const;

export function parseBenchOptions(argv: readonly string[], root: string): BenchOptions {
  const md = pick(argv, 'markdown', 'BENCH_MARKDOWN', `${root}/BENCHMARKS.md`);
  const prof = pick(argv, 'cpu-prof', 'BENCH_CPU_PROF', '');
  const only = pick(argv, 'only', 'BENCH_ONLY', PHASES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of only) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase "${p}" (phases: ${PHASES.join(', ')})`);
  return {
    seconds: num(argv, 'seconds', 'BENCH_SECONDS', 5),
    warmupSeconds: num(argv, 'warmup', 'BENCH_WARMUP', 1),
    concurrency: list(argv, 'concurrency', 'BENCH_CONCURRENCY', '1,16,64'),
    streamConcurrency: list(argv, 'stream-concurrency', 'BENCH_STREAM_CONCURRENCY', '1,16'),
    streams: num(argv, 'streams', 'BENCH_STREAMS', 1000),
    holdSeconds: num(argv, 'hold-seconds', 'BENCH_HOLD_SECONDS', 10),
    streamScale: num(argv, 'stream-scale', 'BENCH_STREAM_SCALE', 8),
    openConcurrency: num(argv, 'open-concurrency', 'BENCH_OPEN_CONCURRENCY', 50),
    microSeconds: num(argv, 'micro-seconds', 'BENCH_MICRO_SECONDS', 2),
    outDir: pick(argv, 'out', 'BENCH_OUT', `${root}/bench/results`),
    markdown: md === 'none' || md === '' ? null : md,
    databaseUrl: pick(argv, 'database-url', 'BENCH_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_run'),
    redisUrl: pick(argv, 'redis-url', 'BENCH_REDIS_URL', 'redis://127.0.0.1:6379/14'),
    adminKey: pick(argv, 'admin-key', 'BENCH_ADMIN_KEY', 'bench-admin-key-0123456789abcdef0123456789'),
    cpuProfDir: prof === '' ? null : prof,
    only: new Set(only),
    quiet: pick(argv, 'quiet', 'BENCH_QUIET', '') !== '',
    tag: pick(argv, 'tag', 'BENCH_TAG', '') || null,
    pgSyncCommit: pick(argv, 'pg-sync-commit', 'BENCH_PG_SYNC_COMMIT', '') || null,
  };
}
