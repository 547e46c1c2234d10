import { performance } from 'node:perf_hooks';
import { createSseEventDecoder } from '../../src/upstream/sse-events';
import type { UpstreamEvent } from '../../src/upstream/types';
import { Pool } from 'undici';
import { MODEL_TABLE, ttftFor, type ModelRow, type Region } from '../../src/catalog/model-table';
import { startSimulatorChild, type Child } from './procs';
import { Progress } from './progress';
import { round } from './stats';

export const ARTICLE_PROMPT = 'Explain recursion in 200 words';

export interface ModelRun {
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
  readonly tokens: number;
  readonly totalMs: number;
}

export interface ModelRow2 {
  readonly rank: number;
  readonly model: string;
  readonly name: string;
  readonly provider: string;
  readonly usdPerMillionOutput: string;
  readonly runs: number;
  readonly failures: number;
  readonly firstError: string | null;
  /** Averages over the successful runs. */
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
  /** The article's figures for the region (model table), and how far the measurement is from them. */
  readonly expectedTtftMs: number;
  readonly expectedTokensPerSecond: number;
  readonly ttftDeviation: number;
  readonly tpsDeviation: number;
  /** Both figures within `tolerance` of the article's. */
  readonly withinTolerance: boolean;
}

export interface ModelsResults {
  readonly schema: 1;
  readonly kind: 'llm-gateway-models';
  readonly date: string;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly upstream: 'simulator' | 'real';
  readonly upstreamUrl: string;
  readonly simulatorLatencyScale: number | null;
  readonly region: Region;
  readonly prompt: string;
  readonly runsPerModel: number;
  readonly tolerance: number;
  /** Against the simulator at scale 1: every model within tolerance (the table is reproduced). */
  readonly reproduced: boolean | null;
  readonly leaderboard: ModelRow2[];
}

const fmtUsd = (micros: bigint) => {
  const s = (Number(micros) / 1e6).toFixed(2);
  return `$${s}`;
};

/** One streamed completion: time to the first content token, and the decode rate between first and last token. */
async function oneRun(pool: Pool, basePath: string, apiKey: string, model: string, region: Region, prompt: string): Promise<ModelRun> {
  const t0 = performance.now();
  const r = await pool.request({
    method: 'POST',
    path: `${basePath}/chat/completions`,
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      authorization: `Bearer ${apiKey}`,
      ...(region === 'ASIA' ? { 'x-region': 'ASIA' } : {}),
    },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], stream: true, stream_options: { include_usage: true } }),
  });
  if (r.statusCode !== 200) {
    const text = await r.body.text();
    throw new Error(`HTTP ${r.statusCode}: ${text.slice(0, 200)}`);
  }
  const decoder = createSseEventDecoder();
  let first: number | null = null;
  let last = 0;
  let chunks = 0;
  let usageTokens: number | null = null;
  const take = (events: readonly UpstreamEvent[], now: number) => {
    for (const ev of events) {
      if (ev.type === 'usage') usageTokens = ev.completionTokens;
      else {
        chunks++;
        first ??= now;
        last = now;
      }
    }
  };
  for await (const chunk of r.body) take(decoder.push(chunk), performance.now());
  take(decoder.end(), performance.now());
  if (first === null) throw new Error('no content token');
  const tokens = usageTokens ?? chunks;
  // Decode rate: tokens after the first over the time from the first to the last (a chunk may carry several).
  const span = (last - first) / 1000;
  const perChunk = chunks > 1 ? tokens / chunks : 1;
  const tps = span > 0 ? ((chunks - 1) * perChunk) / span : NaN;
  return { ttftMs: first - t0, tokensPerSecond: tps, tokens, totalMs: performance.now() - t0 };
}

export interface ModelsOptions {
  readonly runs: number;
  readonly region: Region;
  /** Only these model ids (default: the whole model table). */
  readonly models: readonly string[] | null;
  readonly tolerance: number;
  /** The real upstream when set; else the project's simulator at `simScale` as a child process. */
  readonly upstream: { baseUrl: string; apiKey: string } | null;
  readonly simScale: number;
  readonly progress: Progress;
}

/**
 * The seed article's method: every model, `runs` streamed runs of the article's prompt direct to the upstream,
 * models side by side (all at once, one run at a time per model), TTFT and tokens/s averaged; leaderboard by TTFT.
 */
export async function runModels(o: ModelsOptions): Promise<ModelsResults> {
  const p = o.progress;
  const startedAt = new Date();
  const t0 = performance.now();
  const table: readonly ModelRow[] = o.models ? MODEL_TABLE.filter((m) => o.models!.includes(m.id)) : MODEL_TABLE;
  if (o.models)
    for (const id of o.models)
      if (!MODEL_TABLE.some((m) => m.id === id)) throw new Error(`unknown model ${id} (known: ${MODEL_TABLE.map((m) => m.id).join(', ')})`);
  let sim: { child: Child; url: string } | null = null;
  try {
    let baseUrl: string;
    let apiKey: string;
    if (o.upstream) {
      ({ baseUrl, apiKey } = o.upstream);
    } else {
      sim = await startSimulatorChild(o.simScale);
      baseUrl = sim.url;
      apiKey = 'bench-models';
    }
    const u = new URL(baseUrl);
    const basePath = u.pathname.replace(/\/+$/, '');
    p.log(
      `bench:models: ${table.length} models x ${o.runs} runs against ${o.upstream ? `the real upstream ${u.origin}` : `the simulator (SIM_LATENCY_SCALE=${o.simScale})`}, region ${o.region}, side by side`,
    );
    const total = table.length * o.runs;
    let done = 0;
    const perModel = await Promise.all(
      table.map(async (m) => {
        const pool = new Pool(u.origin, { connections: 1, keepAliveTimeout: 60_000 });
        const runs: ModelRun[] = [];
        let failures = 0;
        let firstError: string | null = null;
        try {
          for (let i = 0; i < o.runs; i++) {
            try {
              const r = await oneRun(pool, basePath, apiKey, m.id, o.region, ARTICLE_PROMPT);
              runs.push(r);
              done++;
              p.status(
                `[${String(done).padStart(String(total).length)}/${total}] ${m.id.padEnd(18)} run ${i + 1}/${o.runs}: TTFT ${r.ttftMs.toFixed(0)} ms, ${r.tokensPerSecond.toFixed(1)} tokens/s, ${r.tokens} tokens`,
              );
            } catch (e) {
              failures++;
              done++;
              firstError ??= (e as Error).message;
              p.log(`  [${done}/${total}] ${m.id} run ${i + 1}/${o.runs}: failed: ${(e as Error).message}`);
            }
          }
        } finally {
          await pool.close();
        }
        const avg = (f: (r: ModelRun) => number) => runs.reduce((a, r) => a + f(r), 0) / Math.max(1, runs.length);
        p.log(
          `  [${String(done).padStart(String(total).length)}/${total}] ${m.id.padEnd(18)} ${runs.length}/${o.runs} runs: TTFT ${avg((r) => r.ttftMs).toFixed(0)} ms, ${avg((r) => r.tokensPerSecond).toFixed(1)} tokens/s${failures ? `, ${failures} failed (${firstError})` : ''}`,
        );
        return { m, runs, failures, firstError };
      }),
    );
    const scale = o.upstream ? 1 : o.simScale;
    const rows = perModel.map(({ m, runs, failures, firstError }) => {
      const avg = (f: (r: ModelRun) => number) => (runs.length ? runs.reduce((a, r) => a + f(r), 0) / runs.length : NaN);
      const ttft = avg((r) => r.ttftMs);
      const tps = avg((r) => r.tokensPerSecond);
      const expTtft = ttftFor(m, o.region) * scale;
      const expTps = scale > 0 ? m.tokensPerSecond / scale : Infinity;
      const dT = (ttft - expTtft) / expTtft;
      const dS = (tps - expTps) / expTps;
      return {
        rank: 0,
        model: m.id,
        name: m.name,
        provider: m.provider,
        usdPerMillionOutput: fmtUsd(m.outputMicrosPerMillion),
        runs: runs.length,
        failures,
        firstError,
        ttftMs: round(ttft, 1),
        tokensPerSecond: round(tps, 1),
        expectedTtftMs: expTtft,
        expectedTokensPerSecond: round(expTps, 2),
        ttftDeviation: round(dT, 4),
        tpsDeviation: round(dS, 4),
        withinTolerance: runs.length > 0 && Math.abs(dT) <= o.tolerance && Math.abs(dS) <= o.tolerance,
      };
    });
    // Fastest first: by time to first token (what a chat user feels), then by tokens/s.
    rows.sort((a, b) => (Number.isNaN(a.ttftMs) ? 1 : Number.isNaN(b.ttftMs) ? -1 : a.ttftMs - b.ttftMs || b.tokensPerSecond - a.tokensPerSecond));
    rows.forEach((r, i) => (r.rank = i + 1));
    return {
      schema: 1,
      kind: 'llm-gateway-models',
      date: startedAt.toISOString().slice(0, 10),
      startedAt: startedAt.toISOString(),
      durationSeconds: Math.round((performance.now() - t0) / 1000),
      upstream: o.upstream ? 'real' : 'simulator',
      upstreamUrl: o.upstream ? u.origin + basePath : 'simulator',
      simulatorLatencyScale: o.upstream ? null : o.simScale,
      region: o.region,
      prompt: ARTICLE_PROMPT,
      runsPerModel: o.runs,
      tolerance: o.tolerance,
      reproduced: o.upstream || o.simScale !== 1 ? null : rows.every((r) => r.withinTolerance),
      leaderboard: rows,
    };
  } finally {
    await sim?.child.stop();
  }
}

export function renderLeaderboard(r: ModelsResults): string {
  const L: string[] = [];
  const against = r.upstream === 'real' ? `the real upstream (${r.upstreamUrl})` : `the simulator at SIM_LATENCY_SCALE=${r.simulatorLatencyScale}`;
  L.push(`### Model leaderboard, ${r.date}, region ${r.region}`);
  L.push('');
  L.push(
    `"${r.prompt}", streamed, ${r.runsPerModel} runs per model averaged, models side by side, against ${against}; ${r.durationSeconds} s in all. Sorted by time to first token.`,
  );
  L.push(
    `Check: each figure within ${Math.round(r.tolerance * 100)}% of the article's table${r.reproduced === null ? '' : ` — table ${r.reproduced ? '**reproduced**' : '**NOT reproduced**'}`}.`,
  );
  L.push('');
  L.push(`| Rank | Model | TTFT (ms) | Tokens/sec | Provider | $/M Output | article TTFT / tok/s | within ${Math.round(r.tolerance * 100)}% |`);
  L.push('|---|---|---|---|---|---|---|---|');
  for (const x of r.leaderboard) {
    const ok =
      x.runs === 0
        ? `fail (${x.failures} failed)`
        : x.withinTolerance
          ? 'pass'
          : `fail (${(x.ttftDeviation * 100).toFixed(1)}% / ${(x.tpsDeviation * 100).toFixed(1)}%)`;
    L.push(
      `| ${x.rank} | ${x.name} | ${Number.isNaN(x.ttftMs) ? 'n/a' : x.ttftMs.toFixed(0)} | ${Number.isNaN(x.tokensPerSecond) ? 'n/a' : x.tokensPerSecond.toFixed(1)} | ${x.provider} | ${x.usdPerMillionOutput} | ${x.expectedTtftMs} / ${x.expectedTokensPerSecond} | ${ok} |`,
    );
  }
  return L.join('\n');
}
