import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dropDatabase, runTsScript } from '../support/scripts';

/**
 * CI guard for `npm run bench:peers`: the whole harness at a tiny size, without Portkey (no install from the
 * registry in CI), as a child process writing into a temp directory (the committed results and BENCHMARKS.md are
 * never touched). Every target must pass its check request and be measured at every concurrency and answer length
 * with no error; the results file must carry the table and the goals. No timing assertion: figures on a shared CI
 * machine mean nothing.
 */
/** A scratch database of this run only (the harness drops and recreates it). */
const DB_URL = `postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_peers_smoke_${process.pid}`;
const TARGETS = ['direct', 'undici', 'apollo', 'gateway'];

describe('bench:peers smoke', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bench-peers-smoke-'));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await dropDatabase(DB_URL);
  });

  it('measures every target but Portkey at both answer lengths and writes the table and the goals', async () => {
    const md = path.join(dir, 'BENCHMARKS.md');
    const r = await runTsScript(
      'bench/peers.ts',
      [
        '--no-portkey',
        '--duration',
        '1',
        '--warmup',
        '0',
        '--prewarm',
        '0',
        // Only streams that start and end inside the window count: long enough for a few on a crowded machine.
        '--stream-duration',
        '1.5',
        '--stream-warmup',
        '0.2',
        '--out',
        dir,
        '--markdown',
        md,
        '--database-url',
        DB_URL,
        '--redis-url',
        process.env.BENCH_SMOKE_REDIS_URL ?? 'redis://127.0.0.1:6379/14',
      ],
      {},
      200_000,
    );
    if (r.code !== 0) throw new Error(`bench:peers exited ${r.code}:\n${r.stderr.slice(-4000)}`);
    const file = readdirSync(dir).find((f) => /^peers-\d{4}-\d{2}-\d{2}\.json$/.test(f));
    expect(file).toBeDefined();
    const res = JSON.parse(readFileSync(path.join(dir, file!), 'utf8'));

    expect(res).toMatchObject({ schema: 1, kind: 'llm-gateway-peers', targets: TARGETS, skipped: {} });
    expect(['wrk', 'autocannon']).toContain(res.loadGenerator.name);
    expect(res.versions[res.loadGenerator.name]).toEqual(expect.any(String));
    expect(res.pinning.detail).toEqual(expect.any(String));
    expect(res.machine.cores).toBeGreaterThan(0);
    for (const tokens of ['8', '150']) {
      for (const t of TARGETS) {
        const run = res.runs[tokens][t];
        for (const c of ['1', '16']) {
          const ns = run.nonStreamed[c];
          expect(ns).toEqual(expect.objectContaining({ concurrency: Number(c), errors: 0 }));
          expect(ns.requests).toBeGreaterThan(0);
          expect(ns.latencyMs.p50).toBeGreaterThan(0);
          expect(ns.latencyMs.p99).toBeGreaterThanOrEqual(ns.latencyMs.p50);
          expect(ns.cpuMsPerRequest[t]).toBeGreaterThanOrEqual(0);
          const st = run.streamed[c];
          expect(st.errors).toBe(0);
          expect(st.requests).toBeGreaterThan(0);
          expect(st.ttftMs.p50).toBeGreaterThan(0);
          expect(st.latencyMs.p50).toBeGreaterThanOrEqual(st.ttftMs.p50);
        }
      }
    }
    expect(res.rows).toHaveLength(8);
    const gw = res.rows.find((x: { target: string; answerTokens: number }) => x.target === 'gateway' && x.answerTokens === 8);
    for (const v of [gw.c1.addedP50Ms, gw.c1.addedP99Ms, gw.c16.rps, gw.ttft.c1AddedMs, gw.ttft.c16AddedMs]) expect(v).toEqual(expect.any(Number));
    const goals = Object.fromEntries(res.goals.map((g: { id: string; pass: boolean | null }) => [g.id, g.pass]));
    expect(Object.keys(goals)).toEqual([
      'added_p50_c1_8',
      'added_p50_c1_150',
      'added_p99_c1',
      'added_p99_c1_stretch',
      'rps_c16_vs_portkey',
      'share_c16_150',
      'ttft_added_c1',
      'ttft_added_c16',
    ]);
    expect(goals.rps_c16_vs_portkey).toBeNull();
    for (const [id, pass] of Object.entries(goals)) if (id !== 'rps_c16_vs_portkey') expect(typeof pass).toBe('boolean');

    const table = readFileSync(path.join(dir, file!.replace(/\.json$/, '.md')), 'utf8');
    expect(table).toContain('| target | c=1 added p50 | c=1 added p99 | c=16 req/s |');
    expect(table).toContain('**the gateway, every check on**');
    expect(readFileSync(md, 'utf8')).toContain('<!-- bench:peers:start -->');
    expect(r.stdout).toMatch(/c=1 added p50, 8-chunk answers/);
  }, 240_000);
});
