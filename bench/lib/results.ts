import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import path from 'node:path';
import type { HoldResult } from './hold';
import type { LoadResult } from './load';
import type { MachineInfo } from './machine';
import type { MicroResult } from './micro';
import { round } from './stats';

/** `openai`: the same gateway through its OpenAI-compatible /v1/chat/completions instead of GraphQL. */
export type Path = 'direct' | 'proxy' | 'gateway' | 'openai';

export interface Cell {
  readonly direct: LoadResult | null;
  readonly proxy: LoadResult | null;
  readonly gateway: LoadResult | null;
  /** The gateway's OpenAI-compatible path (absent in results written before it existed). */
  readonly openai?: LoadResult | null;
  /** Gateway (GraphQL, and OpenAI path) and proxy minus direct, ms: at p50 and at p99 (difference of the percentiles). */
  readonly addedMs: {
    gatewayP50: number | null;
    gatewayP99: number | null;
    proxyP50: number | null;
    proxyP99: number | null;
    openaiP50?: number | null;
    openaiP99?: number | null;
  };
  /** Throughput as a share of direct. */
  readonly throughputVsDirect: { gateway: number | null; proxy: number | null; openai?: number | null };
}

export interface Goal {
  readonly id: string;
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean | null;
}

export interface BenchResults {
  readonly schema: 1;
  readonly kind: 'llm-gateway-bench';
  readonly date: string;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineInfo;
  readonly versions: Record<string, string>;
  readonly settings: Record<string, unknown>;
  /** Keyed by concurrency. */
  readonly nonStreamed: Record<string, Cell>;
  /** Keyed by concurrency; latencies are whole streams, ttftMs the first token. */
  readonly streamed: Record<
    string,
    Cell & {
      ttftAddedMs: {
        gatewayP50: number | null;
        gatewayP99: number | null;
        proxyP50: number | null;
        proxyP99: number | null;
        openaiP50?: number | null;
        openaiP99?: number | null;
      };
    }
  >;
  readonly manyStreams: HoldResult | null;
  readonly parts: MicroResult | null;
  readonly goals: Goal[];
  /** Lines the gateway children printed at LOG_LEVEL=warn during the run (each a warning or an error). */
  readonly gatewayLogLines: number;
  readonly gatewayLogTail: string;
  /** Where this file was written, relative to the project when inside it. */
  readonly jsonPath: string;
}

const diff = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) ? null : round(a - b, 3);

export function cell(direct: LoadResult | null, proxy: LoadResult | null, gateway: LoadResult | null, openai: LoadResult | null = null): Cell {
  return {
    direct,
    proxy,
    gateway,
    openai,
    addedMs: {
      gatewayP50: diff(gateway?.latencyMs.p50, direct?.latencyMs.p50),
      gatewayP99: diff(gateway?.latencyMs.p99, direct?.latencyMs.p99),
      proxyP50: diff(proxy?.latencyMs.p50, direct?.latencyMs.p50),
      proxyP99: diff(proxy?.latencyMs.p99, direct?.latencyMs.p99),
      openaiP50: diff(openai?.latencyMs.p50, direct?.latencyMs.p50),
      openaiP99: diff(openai?.latencyMs.p99, direct?.latencyMs.p99),
    },
    throughputVsDirect: {
      gateway: gateway && direct?.rps ? round(gateway.rps / direct.rps, 3) : null,
      proxy: proxy && direct?.rps ? round(proxy.rps / direct.rps, 3) : null,
      openai: openai && direct?.rps ? round(openai.rps / direct.rps, 3) : null,
    },
  };
}

export function streamCell(direct: LoadResult | null, proxy: LoadResult | null, gateway: LoadResult | null, openai: LoadResult | null = null) {
  return {
    ...cell(direct, proxy, gateway, openai),
    ttftAddedMs: {
      gatewayP50: diff(gateway?.ttftMs?.p50, direct?.ttftMs?.p50),
      gatewayP99: diff(gateway?.ttftMs?.p99, direct?.ttftMs?.p99),
      proxyP50: diff(proxy?.ttftMs?.p50, direct?.ttftMs?.p50),
      proxyP99: diff(proxy?.ttftMs?.p99, direct?.ttftMs?.p99),
      openaiP50: diff(openai?.ttftMs?.p50, direct?.ttftMs?.p50),
      openaiP99: diff(openai?.ttftMs?.p99, direct?.ttftMs?.p99),
    },
  };
}

const f = (v: number | null | undefined, d = 2) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));

/** The issue's goals (issue 7, item 3), judged on this run. */
export function judgeGoals(r: Pick<BenchResults, 'nonStreamed' | 'streamed' | 'manyStreams'>, streamsGoal = 1000): Goal[] {
  const c1 = r.nonStreamed['1'];
  const c16 = r.nonStreamed['16'];
  const s1 = r.streamed['1'];
  const h = r.manyStreams;
  const le = (v: number | null | undefined, max: number) => (v === null || v === undefined ? null : v <= max);
  const allHeld = h ? h.streamsStarted === h.streamsRequested && h.streamsOpenAtEnd === h.streamsRequested && h.streamsRequested >= streamsGoal : null;
  const eld = h?.eventLoopDelayMs.p99 ?? null;
  return [
    {
      id: 'added_p50_c1',
      goal: 'Added latency p50, chat mutation, concurrency 1',
      target: '<= 1.5 ms',
      measured: `${f(c1?.addedMs.gatewayP50)} ms`,
      pass: le(c1?.addedMs.gatewayP50, 1.5),
    },
    {
      id: 'added_p99_c1',
      goal: 'Added latency p99, chat mutation, concurrency 1',
      target: '<= 5 ms',
      measured: `${f(c1?.addedMs.gatewayP99)} ms`,
      pass: le(c1?.addedMs.gatewayP99, 5),
    },
    {
      id: 'ttft_added_p50_c1',
      goal: 'Streamed time to first token added, p50 (graphql-ws vs SSE, concurrency 1)',
      target: '<= 2 ms',
      measured: `${f(s1?.ttftAddedMs.gatewayP50)} ms`,
      pass: le(s1?.ttftAddedMs.gatewayP50, 2),
    },
    {
      id: 'throughput_c16',
      goal: 'Throughput at concurrency 16, share of direct',
      target: '>= 0.15',
      measured: f(c16?.throughputVsDirect.gateway, 3),
      pass: c16?.throughputVsDirect.gateway == null ? null : c16.throughputVsDirect.gateway >= 0.15,
    },
    {
      id: 'streams_1000',
      goal: `${streamsGoal.toLocaleString('en-US')} concurrent streams held, event-loop delay p99`,
      target: '< 50 ms, all held',
      measured: h
        ? `${h.streamsOpenAtEnd} of ${h.streamsRequested} flowing (${h.subscriptionsOpenAtEnd} subscribed, upstream max ${h.upstreamStreamsMax}); event-loop delay p99 ${f(eld, 1)} ms`
        : 'n/a',
      pass: h === null ? null : Boolean(allHeld) && eld !== null && eld < 50,
    },
  ];
}

const mib = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : (b / 2 ** 20).toFixed(1));
const verdict = (p: boolean | null) => (p === null ? 'not measured' : p ? '**pass**' : '**MISS**');
const serverOf: Record<Path, string> = { direct: 'simulator', proxy: 'proxy', gateway: 'gateway', openai: 'gateway' };
const label: Record<Path, string> = {
  direct: 'direct to simulator',
  proxy: 'bare undici proxy (floor)',
  gateway: 'gateway (all checks on)',
  openai: 'gateway /v1 OpenAI-compatible (all checks on)',
};
const PATHS = ['direct', 'proxy', 'gateway', 'openai'] as const;
/** Added ms and throughput ratio of one path of a cell ('' for direct, the baseline). */
function addedOf(x: Cell, p: Path, ttft?: Record<string, number | null | undefined>): [string, string, string] {
  if (p === 'direct') return ['', '', '1'];
  const src = ttft ?? (x.addedMs as Record<string, number | null | undefined>);
  return [f(src[`${p}P50`]), f(src[`${p}P99`]), f((x.throughputVsDirect as Record<string, number | null | undefined>)[p], 3)];
}

/** The generated part of BENCHMARKS.md: machine, versions, goals and every figure of the run. */
export function renderMarkdown(r: BenchResults): string {
  const L: string[] = [];
  const m = r.machine;
  const v = r.versions;
  L.push(`### Run of ${r.date}`);
  L.push('');
  L.push(
    `- Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB memory, ${m.os}; load average (1/5/15 min) ${m.loadAverageAtStart.join(' / ')} at start, ${m.loadAverageAtEnd?.join(' / ') ?? '?'} at the end.`,
  );
  L.push(
    `- Versions: Node ${v.node}; ${Object.entries(v)
      .filter(([k]) => !['node', 'postgres', 'redis', 'postgresSynchronousCommit'].includes(k))
      .map(([k, x]) => `${k} ${x}`)
      .join(', ')}.`,
  );
  L.push(`- Services: Postgres ${v.postgres ?? '?'} (synchronous_commit=${v.postgresSynchronousCommit ?? '?'}), Redis ${v.redis ?? '?'}, all on 127.0.0.1.`);
  L.push(
    `- Settings: ${Object.entries(r.settings)
      .map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : String(x)}`)
      .join(', ')}. Whole run ${r.durationSeconds} s.`,
  );
  L.push('');
  L.push('#### Goals (issue 7)');
  L.push('');
  L.push('| goal | target | measured | result |');
  L.push('|---|---|---|---|');
  for (const g of r.goals) L.push(`| ${g.goal} | ${g.target} | ${g.measured} | ${verdict(g.pass)} |`);
  L.push('');
  L.push('#### Non-streamed: `chat` mutation and `POST /v1/chat/completions` vs the same completion (150 tokens) direct and through the floor proxy');
  L.push('');
  L.push('| concurrency | path | req/s | vs direct | p50 ms | p99 ms | added p50 ms | added p99 ms | server CPU ms/req | req/s per server core | errors |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [c, x] of Object.entries(r.nonStreamed)) {
    for (const p of PATHS) {
      const lr = x[p];
      if (!lr) continue;
      const [a50, a99, ratio] = addedOf(x, p);
      const added = [a50, a99];
      const cpu = lr.cpuMsPerRequest[serverOf[p]];
      L.push(
        `| ${c} | ${label[p]} | ${f(lr.rps, 0)} | ${ratio} | ${f(lr.latencyMs.p50)} | ${f(lr.latencyMs.p99)} | ${added[0]} | ${added[1]} | ${f(cpu, 3)} | ${cpu ? f(1000 / cpu, 0) : 'n/a'} | ${lr.errors} |`,
      );
    }
  }
  L.push('');
  L.push(
    '"server" is the process in the middle for the proxy and the gateway, and the simulator itself for direct. A gateway request also costs the simulator a streamed answer (the gateway always streams from upstream).',
  );
  L.push('');
  L.push("#### Streamed: time to first token, graphql-ws subscription and the gateway's own SSE (/v1) vs SSE");
  L.push('');
  L.push('| concurrency | path | streams/s | TTFT p50 ms | TTFT p99 ms | added p50 ms | added p99 ms | whole stream p50 ms | server CPU ms/stream | errors |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const [c, x] of Object.entries(r.streamed)) {
    for (const p of PATHS) {
      const lr = x[p];
      if (!lr) continue;
      const [a50, a99] = addedOf(x, p, x.ttftAddedMs);
      const added = [a50, a99];
      L.push(
        `| ${c} | ${label[p].replace('direct to simulator', 'direct SSE').replace('gateway (all checks on)', 'gateway graphql-ws (all checks on)').replace('OpenAI-compatible (all', 'SSE (all')} | ${f(lr.rps, 0)} | ${f(lr.ttftMs?.p50)} | ${f(lr.ttftMs?.p99)} | ${added[0]} | ${added[1]} | ${f(lr.latencyMs.p50)} | ${f(lr.cpuMsPerRequest[serverOf[p]], 3)} | ${lr.errors} |`,
      );
    }
  }
  L.push('');
  const h = r.manyStreams;
  if (h) {
    L.push(`#### Many streams: ${h.streamsRequested} subscriptions at once (slowed simulator, each stream ~${h.streamSecondsExpected.toFixed(0)} s)`);
    L.push('');
    L.push('| figure | value |');
    L.push('|---|---|');
    L.push(`| subscriptions open at the end of the window / of them flowing (first token received) | ${h.subscriptionsOpenAtEnd} / ${h.streamsOpenAtEnd} |`);
    L.push(`| subscriptions that ever got a first token | ${h.streamsStarted} |`);
    L.push(`| upstream answers being written at once (simulator, max) | ${h.upstreamStreamsMax} |`);
    L.push(
      `| completed / errors / cancelled by the bench after waiting | ${h.completed} / ${h.errors}${h.firstError ? ` (first: ${h.firstError.replace(/\|/g, '/')})` : ''} / ${h.cancelledByBench} |`,
    );
    L.push(`| ramp (all subscribed and flowing) | ${h.rampSeconds} s |`);
    L.push(`| gateway RSS idle → with the streams open | ${mib(h.rssBeforeBytes)} → ${mib(h.rssDuringBytes)} MiB |`);
    L.push(`| **RSS per open subscription** / per flowing stream | **${f(h.rssPerSubscriptionKiB, 1)} KiB** / ${f(h.rssPerStreamKiB, 1)} KiB |`);
    L.push(`| V8 heap used idle → open | ${mib(h.heapUsedBeforeBytes)} → ${mib(h.heapUsedDuringBytes)} MiB |`);
    L.push(
      `| **event-loop delay** (prom-client, ${h.windowSeconds} s window) p50 / p90 / p99 / max | ${f(h.eventLoopDelayMs.p50)} / ${f(h.eventLoopDelayMs.p90)} / **${f(h.eventLoopDelayMs.p99)}** / ${f(h.eventLoopDelayMs.max)} ms |`,
    );
    L.push(
      `| event-loop delay idle p50 / p99 / max | ${f(h.eventLoopDelayIdleMs.p50)} / ${f(h.eventLoopDelayIdleMs.p99)} / ${f(h.eventLoopDelayIdleMs.max)} ms |`,
    );
    L.push(`| GET /healthz from outside during the window p50 / p99 / max | ${f(h.healthzMs.p50)} / ${f(h.healthzMs.p99)} / ${f(h.healthzMs.max)} ms |`);
    L.push(`| gateway CPU during the window | ${f(h.gatewayCpuCores, 2)} cores |`);
    L.push(`| tokens delivered to the clients | ${f(h.tokensPerSecondDelivered, 0)} /s |`);
    L.push('');
  }
  const parts = r.parts;
  if (parts) {
    L.push(`#### The parts alone (one at a time, in-process, real Redis and Postgres, synchronous_commit=${parts.postgresSynchronousCommit})`);
    L.push('');
    L.push('| part | n | p50 ms | p99 ms | mean ms | ops/s |');
    L.push('|---|---|---|---|---|---|');
    for (const [name, o] of Object.entries(parts.ops))
      L.push(`| ${name} | ${o.n} | ${f(o.ms.p50, 3)} | ${f(o.ms.p99, 3)} | ${f(o.ms.mean, 3)} | ${o.opsPerSecond} |`);
    L.push('');
  }
  L.push(`Gateway log lines at LOG_LEVEL=warn during the run: ${r.gatewayLogLines}. Raw figures: \`${r.jsonPath}\`.`);
  return L.join('\n');
}

export const MARK_START = '<!-- bench:run:start -->';
export const MARK_END = '<!-- bench:run:end -->';

/** Replaces the text between two markers of a file (appends a marked section when they are missing). */
export function refreshSection(file: string, start: string, end: string, body: string, heading = ''): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const block = `${start}\n${body}\n${end}`;
  let next: string;
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  if (i >= 0 && j > i) next = old.slice(0, i) + block + old.slice(j + end.length);
  else next = `${old}${old && !old.endsWith('\n') ? '\n' : ''}${heading ? `\n${heading}\n\n` : ''}${block}\n`;
  writeAtomic(file, next);
}

export function writeAtomic(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export const today = () => new Date().toISOString().slice(0, 10);
