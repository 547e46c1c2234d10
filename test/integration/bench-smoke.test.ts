import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dropDatabase, runTsScript } from '../support/scripts';

/**
 * CI guard for the benchmarks: a short smoke run of `npm run bench` and of `npm run bench:models` (a few hundred
 * requests, a few seconds each), as child processes, into a temp directory (the committed results and
 * BENCHMARKS.md are never touched). Checks that they run and that their JSON parses with the expected keys. No
 * timing assertion: figures on a shared CI machine mean nothing.
 */
/** A scratch database of this run only (the bench drops and recreates it), so concurrent test runs do not collide. */
const SMOKE_DB_URL = process.env.BENCH_SMOKE_DATABASE_URL ?? `postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_smoke_${process.pid}`;

describe('benchmarks smoke', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    if (process.env.BENCH_SMOKE_DATABASE_URL) return;
    await dropDatabase(SMOKE_DB_URL);
  });

  it('npm run bench runs end to end and writes parseable results with every part', async () => {
    const md = path.join(dir, 'BENCHMARKS.md');
    const r = await runTsScript(
      'bench/run.ts',
      [],
      {
        BENCH_SECONDS: '0.5',
        BENCH_WARMUP: '0.2',
        BENCH_CONCURRENCY: '1,4',
        BENCH_STREAM_CONCURRENCY: '1',
        BENCH_STREAMS: '50',
        BENCH_HOLD_SECONDS: '1',
        BENCH_STREAM_SCALE: '0.5',
        BENCH_MICRO_SECONDS: '0.2',
        BENCH_OUT: dir,
        BENCH_MARKDOWN: md,
        BENCH_DATABASE_URL: SMOKE_DB_URL,
        BENCH_REDIS_URL: process.env.BENCH_SMOKE_REDIS_URL ?? 'redis://127.0.0.1:6379/14',
      },
      150_000,
    );
    if (r.code !== 0) throw new Error(`bench exited ${r.code}:\n${r.stderr.slice(-4000)}`);
    const files = readdirSync(dir).filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f));
    expect(files).toHaveLength(1);
    const res = JSON.parse(readFileSync(path.join(dir, files[0]!), 'utf8'));
    expect(res).toMatchObject({ schema: 1, kind: 'llm-gateway-bench' });
    for (const k of ['machine', 'versions', 'settings', 'nonStreamed', 'streamed', 'manyStreams', 'parts', 'goals']) expect(res).toHaveProperty(k);
    expect(res.machine.cores).toBeGreaterThan(0);
    for (const c of ['1', '4']) {
      for (const p of ['direct', 'proxy', 'gateway', 'openai']) {
        const cellRes = res.nonStreamed[c][p];
        expect(cellRes).toEqual(
          expect.objectContaining({
            rps: expect.any(Number),
            requests: expect.any(Number),
            latencyMs: expect.objectContaining({ p50: expect.any(Number), p99: expect.any(Number) }),
          }),
        );
        expect(cellRes.requests).toBeGreaterThan(0);
        expect(cellRes.errors).toBe(0);
      }
      expect(res.nonStreamed[c].addedMs).toEqual(expect.objectContaining({ gatewayP50: expect.any(Number), gatewayP99: expect.any(Number) }));
    }
    expect(res.streamed['1'].gateway.ttftMs).toEqual(expect.objectContaining({ p50: expect.any(Number) }));
    expect(res.streamed['1'].gateway.errors).toBe(0);
    expect(res.streamed['1'].openai).toEqual(expect.objectContaining({ errors: 0, ttftMs: expect.objectContaining({ p50: expect.any(Number) }) }));
    expect(res.streamed['1'].ttftAddedMs).toHaveProperty('openaiP50');
    expect(res.nonStreamed['1'].addedMs).toEqual(expect.objectContaining({ openaiP50: expect.any(Number), openaiP99: expect.any(Number) }));
    expect(res.streamed['1'].ttftAddedMs).toHaveProperty('gatewayP50');
    expect(res.manyStreams).toEqual(expect.objectContaining({ streamsRequested: 50, completed: 50, errors: 0, rssPerStreamKiB: expect.any(Number) }));
    expect(res.manyStreams.eventLoopDelayMs).toHaveProperty('p99');
    expect(Object.keys(res.parts.ops)).toEqual(
      expect.arrayContaining(['admission (limiter.admit, Lua)', 'settlement (limiter.settle, Lua)', 'write-ahead insert (ledger.hold)']),
    );
    expect(res.goals.map((g: { id: string }) => g.id)).toEqual(['added_p50_c1', 'added_p99_c1', 'ttft_added_p50_c1', 'throughput_c16', 'streams_1000']);
    const text = readFileSync(md, 'utf8');
    expect(text).toContain('<!-- bench:run:start -->');
    expect(text).toContain('#### Goals (issue 7)');
  }, 180_000);

  it('npm run bench:models measures models side by side and writes the leaderboard', async () => {
    const r = await runTsScript(
      'bench/models.ts',
      ['--runs', '1', '--models', 'step-3.5-flash,qwen3-8b', '--out', dir, '--markdown', 'none'],
      { GLOBAL_API_KEY: '' },
      60_000,
    );
    if (r.code !== 0 && r.code !== 1) throw new Error(`bench:models exited ${r.code}:\n${r.stderr.slice(-4000)}`);
    const file = readdirSync(dir).find((f) => /^models-\d{4}-\d{2}-\d{2}\.json$/.test(f));
    expect(file).toBeDefined();
    const res = JSON.parse(readFileSync(path.join(dir, file!), 'utf8'));
    expect(res).toMatchObject({ schema: 1, kind: 'llm-gateway-models', upstream: 'simulator', runsPerModel: 1 });
    expect(res.leaderboard).toHaveLength(2);
    for (const row of res.leaderboard) {
      expect(row).toEqual(
        expect.objectContaining({
          rank: expect.any(Number),
          model: expect.any(String),
          ttftMs: expect.any(Number),
          tokensPerSecond: expect.any(Number),
          provider: expect.any(String),
          usdPerMillionOutput: expect.any(String),
          withinTolerance: expect.any(Boolean),
        }),
      );
    }
    expect(r.stdout).toContain('| Rank | Model | TTFT (ms) | Tokens/sec | Provider | $/M Output |');
  }, 90_000);
});
