import type { LoadResult } from './load';
import type { MachineInfo } from './machine';
import type { Goal } from './results';
import { round } from './stats';

export const TARGET_IDS = ['direct', 'undici', 'apollo', 'portkey', 'gateway'] as const;
export type TargetId = (typeof TARGET_IDS)[number];

export const TARGET_LABELS: Record<TargetId, string> = {
  direct: 'direct (the simulator, no hop)',
  undici: 'bare undici hop',
  apollo: 'bare Apollo 5 + graphql-ws hop, no checks',
  portkey: 'Portkey 1.15.2, no checks',
  gateway: 'the gateway, every check on',
};

/** Every figure of one target at one answer length, keyed by concurrency. */
export interface TargetRun {
  readonly nonStreamed: Record<string, LoadResult>;
  readonly streamed: Record<string, LoadResult>;
}

/** The issue's table: one row per target and answer length, "added" = the target's percentile minus direct's. */
export interface PeerRow {
  readonly target: TargetId;
  readonly label: string;
  readonly answerTokens: number;
  readonly c1: { p50Ms: number | null; p99Ms: number | null; addedP50Ms: number | null; addedP99Ms: number | null };
  readonly c16: { rps: number | null; serverCpuMsPerRequest: number | null };
  readonly ttft: { c1P50Ms: number | null; c1AddedMs: number | null; c16P50Ms: number | null; c16AddedMs: number | null };
  readonly errors: number;
}

export interface PeersResults {
  readonly schema: 1;
  readonly kind: 'llm-gateway-peers';
  readonly date: string;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineInfo;
  readonly versions: Record<string, string>;
  readonly loadGenerator: { name: string; version: string; note: string };
  /** Which process ran on which CPU, or why nothing was pinned. */
  readonly pinning: { enabled: boolean; loadAndUpstreamCpu: number | null; targetCpu: number | null; detail: string };
  readonly settings: Record<string, unknown>;
  readonly targets: TargetId[];
  /** Targets that failed their check request and were not measured, with the reason. */
  readonly skipped: Partial<Record<TargetId, string>>;
  /** Keyed by answer length in tokens, then target. */
  readonly runs: Record<string, Partial<Record<TargetId, TargetRun>>>;
  readonly rows: PeerRow[];
  readonly goals: Goal[];
  readonly gatewayLogLines: number;
  readonly gatewayLogTail: string;
  readonly jsonPath: string;
}

const minus = (a: number | null | undefined, b: number | null | undefined) =>
  a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) ? null : round(a - b, 3);
const finite = (v: number | null | undefined) => (v == null || !Number.isFinite(v) ? null : v);

export function peerRows(runs: PeersResults['runs']): PeerRow[] {
  const rows: PeerRow[] = [];
  for (const [tokens, byTarget] of Object.entries(runs)) {
    const d = byTarget.direct;
    for (const id of TARGET_IDS) {
      const t = byTarget[id];
      if (!t) continue;
      const n1 = t.nonStreamed['1'];
      const n16 = t.nonStreamed['16'];
      const s1 = t.streamed['1'];
      const s16 = t.streamed['16'];
      const errors = [...Object.values(t.nonStreamed), ...Object.values(t.streamed)].reduce((a, r) => a + r.errors, 0);
      rows.push({
        target: id,
        label: TARGET_LABELS[id],
        answerTokens: Number(tokens),
        c1: {
          p50Ms: finite(n1?.latencyMs.p50),
          p99Ms: finite(n1?.latencyMs.p99),
          addedP50Ms: id === 'direct' ? null : minus(n1?.latencyMs.p50, d?.nonStreamed['1']?.latencyMs.p50),
          addedP99Ms: id === 'direct' ? null : minus(n1?.latencyMs.p99, d?.nonStreamed['1']?.latencyMs.p99),
        },
        c16: { rps: finite(n16?.rps), serverCpuMsPerRequest: finite(n16?.cpuMsPerRequest[id]) },
        ttft: {
          c1P50Ms: finite(s1?.ttftMs?.p50),
          c1AddedMs: id === 'direct' ? null : minus(s1?.ttftMs?.p50, d?.streamed['1']?.ttftMs?.p50),
          c16P50Ms: finite(s16?.ttftMs?.p50),
          c16AddedMs: id === 'direct' ? null : minus(s16?.ttftMs?.p50, d?.streamed['16']?.ttftMs?.p50),
        },
        errors,
      });
    }
  }
  return rows;
}

const f = (v: number | null | undefined, d = 2) => (v == null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const le = (v: number | null, max: number | null) => (v === null || max === null ? null : v <= max);
const ge = (v: number | null, min: number | null) => (v === null || min === null ? null : v >= min);

/** The goals of issue 12 that this harness measures, judged on one run (same run, same machine, every check on). */
export function judgePeerGoals(rows: readonly PeerRow[]): Goal[] {
  const row = (id: TargetId, tokens: number) => rows.find((r) => r.target === id && r.answerTokens === tokens) ?? null;
  const gw8 = row('gateway', 8);
  const gw150 = row('gateway', 150);
  const apollo8 = row('apollo', 8);
  const portkey8 = row('portkey', 8);
  const direct150 = row('direct', 150);
  const p50_8 = gw8?.c1.addedP50Ms ?? null;
  const p50_150 = gw150?.c1.addedP50Ms ?? null;
  const p99_8 = gw8?.c1.addedP99Ms ?? null;
  const rps = gw8?.c16.rps ?? null;
  const twicePortkey = portkey8?.c16.rps == null ? null : 2 * portkey8.c16.rps;
  const share = gw150?.c16.rps != null && direct150?.c16.rps ? round(gw150.c16.rps / direct150.c16.rps, 3) : null;
  const ttft1 = gw8?.ttft.c1AddedMs ?? null;
  const ttft1Max = apollo8?.ttft.c1AddedMs == null ? null : round(apollo8.ttft.c1AddedMs + 0.4, 3);
  const ttft16 = gw8?.ttft.c16AddedMs ?? null;
  const ttft16Max = apollo8?.ttft.c16AddedMs ?? null;
  return [
    { id: 'added_p50_c1_8', goal: 'c=1 added p50, 8-chunk answers', target: '<= 1.1 ms', measured: `${f(p50_8)} ms`, pass: le(p50_8, 1.1) },
    { id: 'added_p50_c1_150', goal: 'c=1 added p50, 150-token answers', target: '<= 1.5 ms', measured: `${f(p50_150)} ms`, pass: le(p50_150, 1.5) },
    { id: 'added_p99_c1', goal: 'c=1 added p99, 8-chunk answers', target: '<= 5 ms', measured: `${f(p99_8)} ms`, pass: le(p99_8, 5) },
    { id: 'added_p99_c1_stretch', goal: 'c=1 added p99, 8-chunk answers (stretch)', target: '<= 3 ms', measured: `${f(p99_8)} ms`, pass: le(p99_8, 3) },
    {
      id: 'rps_c16_vs_portkey',
      goal: 'c=16 throughput, 8-chunk answers, against Portkey in the same run',
      target: twicePortkey === null ? '>= 2x Portkey' : `>= 2x Portkey (${f(twicePortkey, 0)} req/s)`,
      measured: `${f(rps, 0)} req/s`,
      pass: ge(rps, twicePortkey),
    },
    {
      id: 'share_c16_150',
      goal: 'c=16 throughput, 150-token answers, share of a direct call',
      target: '>= 0.25',
      measured: f(share, 3),
      pass: ge(share, 0.25),
    },
    {
      id: 'ttft_added_c1',
      goal: 'stream TTFT added at c=1, 8-chunk answers',
      target: ttft1Max === null ? "<= the bare Apollo hop's + 0.4 ms" : `<= the bare Apollo hop's + 0.4 ms (${f(ttft1Max)} ms)`,
      measured: `${f(ttft1)} ms`,
      pass: le(ttft1, ttft1Max),
    },
    {
      id: 'ttft_added_c16',
      goal: 'stream TTFT added at c=16, 8-chunk answers',
      target: ttft16Max === null ? "<= the bare Apollo hop's" : `<= the bare Apollo hop's (${f(ttft16Max)} ms)`,
      measured: `${f(ttft16)} ms`,
      pass: le(ttft16, ttft16Max),
    },
  ];
}

const verdict = (p: boolean | null) => (p === null ? 'not measured' : p ? '**pass**' : '**MISS**');
const signed = (v: number | null) => (v === null ? 'n/a' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)} ms`);

/** The run as markdown: the issue's table per answer length, then the goals. */
export function renderPeersMarkdown(r: PeersResults): string {
  const L: string[] = [];
  const m = r.machine;
  L.push(`### Side-by-side run of ${r.date}`);
  L.push('');
  L.push(
    `- Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB; load average ${m.loadAverageAtStart.join(' / ')} at start, ${m.loadAverageAtEnd?.join(' / ') ?? '?'} at the end.`,
  );
  L.push(`- Load generator: ${r.loadGenerator.name} ${r.loadGenerator.version} (${r.loadGenerator.note}). Pinning: ${r.pinning.detail}.`);
  L.push(
    `- Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
  );
  L.push(
    `- Settings: ${Object.entries(r.settings)
      .map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : String(x)}`)
      .join(', ')}. Whole run ${r.durationSeconds} s.`,
  );
  for (const [id, why] of Object.entries(r.skipped)) L.push(`- **Not measured: ${TARGET_LABELS[id as TargetId]}**: ${why}`);
  for (const tokens of [...new Set(r.rows.map((x) => x.answerTokens))]) {
    L.push('');
    L.push(`#### ${tokens}-token answers (non-streamed: \`chat\` mutation or POST /v1/chat/completions; streamed: graphql-ws or SSE)`);
    L.push('');
    L.push('| target | c=1 added p50 | c=1 added p99 | c=16 req/s | server CPU ms/req at c=16 | stream TTFT added c=1 | TTFT added c=16 | errors |');
    L.push('|---|---|---|---|---|---|---|---|');
    for (const x of r.rows.filter((y) => y.answerTokens === tokens)) {
      const direct = x.target === 'direct';
      const label = x.target === 'gateway' ? `**${x.label}**` : x.label;
      const c1p50 = direct ? `(${f(x.c1.p50Ms, 3)} ms)` : signed(x.c1.addedP50Ms);
      const c1p99 = direct ? `(${f(x.c1.p99Ms, 3)} ms)` : signed(x.c1.addedP99Ms);
      const t1 = direct ? `(${f(x.ttft.c1P50Ms, 3)} ms)` : signed(x.ttft.c1AddedMs);
      const t16 = direct ? `(${f(x.ttft.c16P50Ms, 3)} ms)` : signed(x.ttft.c16AddedMs);
      const rps = x.c16.rps === null ? 'n/a' : Math.round(x.c16.rps).toLocaleString('en-US');
      L.push(`| ${label} | ${c1p50} | ${c1p99} | ${rps} | ${f(x.c16.serverCpuMsPerRequest, 3)} | ${t1} | ${t16} | ${x.errors} |`);
    }
  }
  L.push('');
  L.push('Direct shows its own figures in parentheses; every other row is that target minus direct, at the same percentile (p50 unless named).');
  L.push('');
  L.push('#### Goals (issue 12), this run');
  L.push('');
  L.push('| goal | target | measured | result |');
  L.push('|---|---|---|---|');
  for (const g of r.goals) L.push(`| ${g.goal} | ${g.target} | ${g.measured} | ${verdict(g.pass)} |`);
  L.push('');
  L.push(`Gateway log lines at LOG_LEVEL=warn during the run: ${r.gatewayLogLines}. Raw figures: \`${r.jsonPath}\`.`);
  return L.join('\n');
}

export const PEERS_MARK_START = '<!-- bench:peers:start -->';
export const PEERS_MARK_END = '<!-- bench:peers:end -->';
