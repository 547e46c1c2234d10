/**
 * `npm run bench:streams`: issue 12's stream goals, each part against its own gateway child over a simulator child.
 *   1. CPU per delivered event: BENCH_CPU_STREAMS (200) chatStream subscriptions, BENCH_CPU_CONCURRENCY (20) at a
 *      time, over a simulator at scale 0.2 (deepseek-v4-flash: ~3 ms a token, so every token is its own network read
 *      and its own event: nothing is coalesced). The gateway child's CPU (/proc) over the run / content events the
 *      clients received ("all-in": admission, ledger and settlement included); and the marginal cost of one more
 *      event: (CPU per 150-token stream - CPU per 10-token stream) / 140.
 *   2. BENCH_STREAMS (1000) concurrent streams at real model pace (SIM_LATENCY_SCALE=1, SIM_ANSWER_TOKENS=1200: about
 *      20 s each at 60 tokens/s, so they overlap) with `flushMs: 50`: the gateway's event-loop delay p99
 *      (monitorEventLoopDelay via its /metrics) over a BENCH_HOLD_SECONDS (10) window, RSS, CPU (bench/lib/hold.ts).
 *   3. BENCH_IDLE_CONNECTIONS (10000) idle graphql-ws connections (acknowledged, no subscription): the gateway's RSS.
 *   4. The GraphQL layer alone, in-process: CPU per event of one subscription through the real schema (20,000 events,
 *      each JSON-serialized as graphql-ws does, a 6-message ChatInput), graphql-js `subscribe` against this project's
 *      `subscribeOnce`, back to back.
 * BENCH_PARTS=cpu,hold,idle,graphql picks parts; BENCH_CPU_PROF_DIR writes the gateway's CPU profiles there. BENCH_DATABASE_URL (its name must contain "bench"; it is dropped and
 * recreated), BENCH_REDIS_URL. Prints a markdown summary; numbers are only meaningful on a quiet machine.
 */
import { performance } from 'node:perf_hooks';
import type { Client } from 'graphql-ws';
import { connected, createBenchTenant, subscribeChat, wsClient } from './lib/clients';
import { holdStreams } from './lib/hold';
import { resetDatabase } from './lib/machine';
import { cpuMs, rssBytes, startGatewayChild, startSimulatorChild, type Child } from './lib/procs';
import { Progress } from './lib/progress';
import { parse, subscribe } from 'graphql';
import { buildSchema } from '../src/graphql/schema';
import { subscribeOnce } from '../src/graphql/subscription-execution';

const env = process.env;
const PARTS = new Set((env.BENCH_PARTS ?? 'cpu,hold,idle,graphql').split(','));
const CPU_STREAMS = Number(env.BENCH_CPU_STREAMS ?? 200);
const CPU_CONCURRENCY = Number(env.BENCH_CPU_CONCURRENCY ?? 20);
const STREAMS = Number(env.BENCH_STREAMS ?? 1000);
const HOLD_SECONDS = Number(env.BENCH_HOLD_SECONDS ?? 10);
const IDLE = Number(env.BENCH_IDLE_CONNECTIONS ?? 10_000);
const ANSWER_TOKENS = 1200;
const DATABASE_URL = env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_streams';
const REDIS_URL = env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';
const ADMIN = 'bench-admin-key-0123456789abcdef0123456789';
const MIB = 2 ** 20;

const p = new Progress();
const children: Child[] = [];
const input = (maxTokens: number, extra: Record<string, unknown> = {}) => ({
  profile: 'chat_default',
  maxTokens,
  messages: [{ role: 'USER', content: 'Explain recursion in 200 words' }],
  ...extra,
});

async function gateway(simScale: number, simEnv: Record<string, string> = {}, extra: Record<string, string> = {}) {
  const sim = await startSimulatorChild(simScale, 'simulator', simEnv);
  children.push(sim.child);
  const prof = env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${env.BENCH_CPU_PROF_DIR}`] : [];
  const gw = await startGatewayChild({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, adminKey: ADMIN, upstreamUrl: sim.url, extra }, 'gateway', prof);
  children.push(gw.child);
  const tenant = await createBenchTenant(gw.graphqlUrl, ADMIN, `bench-streams-${Date.now().toString(36)}`);
  return { sim, gw, tenant };
}

/** The gateway's CPU per second with nothing to serve (its periodic jobs), subtracted from every run. */
async function idleCpuPerSecond(pid: number): Promise<number> {
  const cpu0 = cpuMs(pid);
  await new Promise((r) => setTimeout(r, 3_000));
  return (cpuMs(pid) - cpu0) / 3;
}

/**
 * Runs `total` streams, `concurrency` at a time over as many connections; returns the gateway's CPU for them (its
 * idle rate over the run's duration taken out) and the content events received.
 */
async function streams(graphqlUrl: string, key: string, pid: number, total: number, concurrency: number, maxTokens: number, idlePerSecond = 0) {
  const clients: Client[] = Array.from({ length: concurrency }, () => wsClient(graphqlUrl, key));
  await Promise.all(clients.map((c) => connected(c)));
  let next = 0;
  let events = 0;
  let failed = 0;
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      while (next < total) {
        next++;
        const r = await subscribeChat(c, input(maxTokens)).done;
        events += r.deltas;
        if (!r.ok) failed++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuMs(pid) - cpu0 - idlePerSecond * seconds;
  await Promise.all(clients.map((c) => c.dispose()));
  return { cpuMs: cpu, events, failed, seconds };
}

async function cpuPart(): Promise<string[]> {
  const { gw, tenant } = await gateway(0.2);
  await streams(gw.graphqlUrl, tenant.key, gw.child.pid, CPU_STREAMS, CPU_CONCURRENCY, 150); // warm-up: JIT, pools
  const idle = await idleCpuPerSecond(gw.child.pid);
  const long = await streams(gw.graphqlUrl, tenant.key, gw.child.pid, CPU_STREAMS, CPU_CONCURRENCY, 150, idle);
  const short = await streams(gw.graphqlUrl, tenant.key, gw.child.pid, CPU_STREAMS, CPU_CONCURRENCY, 10, idle);
  const allIn = (long.cpuMs * 1000) / long.events;
  const marginal = ((long.cpuMs - short.cpuMs) * 1000) / (long.events - short.events);
  return [
    `| CPU per delivered event, all-in (${CPU_STREAMS} streams x 150 tokens, ${CPU_CONCURRENCY} at a time, one token per read) | ${allIn.toFixed(1)} µs | ${long.events} events, ${long.cpuMs.toFixed(0)} ms gateway CPU, ${long.failed} failed |`,
    `| CPU per delivered event, marginal (150- vs 10-token streams) | ${marginal.toFixed(1)} µs | ≤ 25 µs goal; 10-token run: ${short.events} events, ${short.cpuMs.toFixed(0)} ms, ${short.failed} failed; idle ${idle.toFixed(0)} ms/s taken out |`,
  ];
}

async function holdPart(): Promise<string[]> {
  // The first-token deadline comes from the model table at scale 1 already; the floor only guards a loaded box.
  const { sim, gw, tenant } = await gateway(1, { SIM_ANSWER_TOKENS: String(ANSWER_TOKENS) }, { FIRST_TOKEN_FLOOR_MS: '10000' });
  const h = await holdStreams({
    graphqlUrl: gw.graphqlUrl,
    origin: gw.origin,
    key: tenant.key,
    gatewayPid: gw.child.pid,
    simOrigin: sim.origin,
    streams: STREAMS,
    windowSeconds: HOLD_SECONDS,
    streamSecondsExpected: (180 + (ANSWER_TOKENS * 1000) / 60) / 1000,
    openConcurrency: 50,
    progress: p,
    input: input(ANSWER_TOKENS, { flushMs: 50 }),
  });
  return [
    `| ${STREAMS} concurrent streams, real pace, flushMs 50: event-loop delay p99 | ${h.eventLoopDelayMs.p99} ms | < 30 ms goal; max ${h.eventLoopDelayMs.max} ms; ${h.streamsOpenAtEnd}/${h.streamsRequested} flowing at the window's end, ${h.errors} errors |`,
    `| the same: gateway CPU, events delivered | ${h.gatewayCpuCores} cores | ${h.tokensPerSecondDelivered} content events/s; RSS ${(h.rssBeforeBytes / MIB).toFixed(0)} -> ${(h.rssDuringBytes / MIB).toFixed(0)} MiB |`,
  ];
}

async function idlePart(): Promise<string[]> {
  const { gw, tenant } = await gateway(0);
  const before = rssBytes(gw.child.pid);
  const clients: Client[] = [];
  let failed = 0;
  for (let i = 0; i < IDLE; i += 200) {
    const batch = Array.from({ length: Math.min(200, IDLE - i) }, () => wsClient(gw.graphqlUrl, tenant.key));
    clients.push(...batch);
    const r = await Promise.allSettled(batch.map((c) => connected(c, 60_000)));
    failed += r.filter((x) => x.status === 'rejected').length;
    p.status(`idle connections: ${clients.length - failed}/${IDLE}`);
  }
  await new Promise((r) => setTimeout(r, 2_000)); // let allocation settle before reading RSS
  const during = rssBytes(gw.child.pid);
  await Promise.all(clients.map((c) => c.dispose()));
  return [
    `| ${IDLE} idle graphql-ws connections: gateway RSS | ${(during / MIB).toFixed(0)} MiB | ≤ 1024 MiB goal; ${(before / MIB).toFixed(0)} MiB before, ${((during - before) / (IDLE - failed) / 1024).toFixed(1)} KiB per connection, ${failed} failed |`,
  ];
}

/** CPU per event of the GraphQL layer alone: the chat service replaced by a stream of ready events. */
async function graphqlPart(): Promise<string[]> {
  const schema = buildSchema();
  const document = parse(
    `subscription S($input: ChatInput!) { chatStream(input: $input) { requestId model delta done outcome usage { completionTokens costUsd } } }`,
  );
  const n = 20_000;
  const big = { ...input(1024), messages: Array.from({ length: 6 }, (_, i) => ({ role: 'USER', content: `message ${i} `.repeat(40) })) };
  const ev = {
    requestId: 'r',
    model: 'deepseek-v4-flash',
    delta: ' lorem',
    done: false,
    outcome: null,
    usage: null,
    ttftMs: null,
    attempts: null,
    toolCallDeltas: null,
    finishReason: null,
  };
  const contextValue = () => ({
    signal: new AbortController().signal,
    principal: {},
    services: {
      chat: {
        stream: async function* () {
          for (let i = 0; i < n; i++) yield ev;
        },
      },
    },
  });
  const perEvent = async (sub: typeof subscribeOnce): Promise<number> => {
    const it = (await sub({ schema, document, variableValues: { input: big }, contextValue: contextValue() })) as AsyncIterable<unknown>;
    const t = process.cpuUsage();
    for await (const r of it) JSON.stringify(r);
    const u = process.cpuUsage(t);
    return (u.user + u.system) / n;
  };
  const rows: string[] = [];
  for (let round = 1; round <= 3; round++) {
    const js = await perEvent(subscribe as typeof subscribeOnce);
    const once = await perEvent(subscribeOnce);
    rows.push(
      `| GraphQL layer per event, round ${round}: graphql-js subscribe / subscribeOnce | ${js.toFixed(1)} / ${once.toFixed(1)} µs | in-process, ${n} events, a 6-message ChatInput |`,
    );
  }
  return rows;
}

async function main(): Promise<void> {
  if (['cpu', 'hold', 'idle'].some((x) => PARTS.has(x))) await resetDatabase(DATABASE_URL);
  const rows: string[] = [];
  const parts: [string, () => Promise<string[]>][] = [
    ['cpu', cpuPart],
    ['hold', holdPart],
    ['idle', idlePart],
    ['graphql', graphqlPart],
  ];
  for (const [name, run] of parts) {
    if (!PARTS.has(name)) continue;
    p.log(`bench:streams: ${name}`);
    rows.push(...(await run()));
    await Promise.all(children.splice(0).map((c) => c.stop()));
  }
  process.stdout.write(['| measure | value | notes |', '|---|---|---|', ...rows].join('\n') + '\n');
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`bench:streams failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => Promise.all(children.map((c) => c.stop())));
