import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Client } from 'graphql-ws';
import Redis from 'ioredis';
import { closedLoop, type LoadResult } from './load';
import {
  completionOp,
  connected,
  createBenchTenant,
  gatewayChatOp,
  gatewayStreamOp,
  gqlRequest,
  pool,
  sseOp,
  upstreamBody,
  wsClient,
  CHAT_DOC,
  PROMPT,
  PROFILE,
  MAX_TOKENS,
} from './clients';
import { holdStreams, type HoldResult } from './hold';
import { machineInfo, resetDatabase, serviceVersions, versions } from './machine';
import { microBench, type MicroResult } from './micro';
import type { BenchOptions } from './options';
import { ROOT, startGatewayChild, startProxyChild, startSimulatorChild, type Child } from './procs';
import { Progress } from './progress';
import { cell, judgeGoals, renderMarkdown, refreshSection, streamCell, today, writeAtomic, MARK_START, MARK_END, type BenchResults } from './results';

/** Model figures the slowed simulator applies to the many-streams part (deepseek-v4-flash: 180 ms, 60 tokens/s, 150 tokens). */
const STREAM_SECONDS_AT_SCALE_1 = (180 + (150 * 1000) / 60) / 1000;

/**
 * The whole benchmark: the simulator (SIM_LATENCY_SCALE=0), the bare proxy and the gateway as child processes,
 * the load generator here; then the many-streams part against a second gateway over a slowed simulator; then the
 * parts alone in-process. Writes <outDir>/<date>.json and refreshes the generated section of the markdown file.
 */
export async function runBench(o: BenchOptions): Promise<{ results: BenchResults; jsonPath: string }> {
  const p = new Progress(o.quiet);
  const startedAt = new Date();
  const t0 = performance.now();
  const machineAtStart = machineInfo();
  const children = new Set<Child>();
  const track = <T extends { child: Child }>(x: T): T => (children.add(x.child), x);
  const stopChild = async (c: Child) => {
    await c.stop();
    children.delete(c);
  };
  let logLines = 0;
  let logTail = '';
  const noteLogs = (c: Child) => {
    logLines += c.lineCount();
    if (c.lineCount()) logTail += `${c.name}:\n${c.tail()}\n`;
  };
  const onSignal = () => {
    p.log('interrupted: stopping the child processes');
    void Promise.all([...children].map((c) => c.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const gwEnv = (upstreamUrl: string, extra: Record<string, string> = {}) => ({
    databaseUrl: o.databaseUrl,
    redisUrl: o.redisUrl,
    adminKey: o.adminKey,
    upstreamUrl,
    extra,
  });
  const profArgs = (tag: string) =>
    o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`, `--cpu-prof-name=gateway-${tag}-${process.pid}.cpuprofile`] : [];

  const nonStreamed: BenchResults['nonStreamed'] = {};
  const streamed: BenchResults['streamed'] = {};
  let manyStreams: HoldResult | null = null;
  let parts: MicroResult | null = null;
  const vers: Record<string, string> = versions();
  let tenantId = '';
  let microTenant: { id: string; key: string } | null = null;

  try {
    p.log(`bench: resetting ${redact(o.databaseUrl)} (the gateway creates, migrates and seeds it)`);
    await resetDatabase(o.databaseUrl, o.pgSyncCommit);
    const redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    Object.assign(vers, await serviceVersions(o.pgSyncCommit ? o.databaseUrl : o.databaseUrl.replace(/\/[^/]*$/, '/postgres'), () => redis.info('server')));
    redis.disconnect();

    const needFast = o.only.has('nonstream') || o.only.has('stream') || o.only.has('parts');
    if (needFast) {
      p.log('bench: starting the simulator (SIM_LATENCY_SCALE=0), the bare proxy and the gateway as child processes');
      const sim = track(await startSimulatorChild(0));
      const [proxy, gw] = await Promise.all([
        startProxyChild(sim.origin).then(track),
        startGatewayChild(gwEnv(sim.url), 'gateway', profArgs('fast')).then(track),
      ]);
      const pids = { simulator: sim.child.pid, proxy: proxy.child.pid, gateway: gw.child.pid };
      const tenant = await createBenchTenant(gw.graphqlUrl, o.adminKey, `bench-${Date.now().toString(36)}`);
      tenantId = tenant.id;
      microTenant = await createBenchTenant(gw.graphqlUrl, o.adminKey, `bench-parts-${Date.now().toString(36)}`);
      // One request through each path before anything is timed: fails fast with the reason.
      const check = await gqlRequest(gw.graphqlUrl, tenant.key, CHAT_DOC, {
        input: { profile: PROFILE, messages: [{ role: 'USER', content: PROMPT }], maxTokens: MAX_TOKENS },
      });
      if (check.errors?.length || !check.data?.chat?.content) throw new Error(`the gateway does not answer the chat mutation: ${JSON.stringify(check.errors)}`);
      p.log(
        `bench: gateway ${gw.origin} (pid ${gw.child.pid}), simulator ${sim.origin}, proxy ${proxy.origin}; tenant ${tenant.id}; ${check.data.chat.usage.completionTokens} tokens per answer`,
      );

      const run = async (label: string, target: string, c: number, op: (w: number) => Promise<import('./load').OpSample>): Promise<LoadResult> => {
        const r = await closedLoop({ label: `${label} ${target}`, concurrency: c, warmupS: o.warmupSeconds, seconds: o.seconds, progress: p, pids, op });
        p.log(
          `  ${label.padEnd(10)} c=${String(c).padEnd(3)} ${target.padEnd(8)} ${String(r.rps).padStart(8)} /s  p50 ${r.latencyMs.p50.toFixed(2).padStart(7)} ms  p99 ${r.latencyMs.p99.toFixed(2).padStart(7)} ms` +
            (r.ttftMs ? `  TTFT p50 ${r.ttftMs.p50.toFixed(2)} p99 ${r.ttftMs.p99.toFixed(2)} ms` : '') +
            (r.errors ? `  ${r.errors} errors (${r.firstError})` : ''),
        );
        return r;
      };

      if (o.only.has('nonstream')) {
        p.log(`bench: non-streamed, ${o.seconds} s per cell after ${o.warmupSeconds} s warm-up`);
        for (const c of o.concurrency) {
          const pools = { direct: pool(sim.origin, c), proxy: pool(proxy.origin, c), gateway: pool(gw.origin, c) };
          const direct = await run('chat', 'direct', c, completionOp(pools.direct));
          const viaProxy = await run('chat', 'proxy', c, completionOp(pools.proxy));
          const gateway = await run('chat', 'gateway', c, gatewayChatOp(pools.gateway, tenant.key));
          const openai = await run('chat', 'openai', c, completionOp(pools.gateway, { model: PROFILE, key: tenant.key }));
          await Promise.all(Object.values(pools).map((x) => x.close()));
          nonStreamed[String(c)] = cell(direct, viaProxy, gateway, openai);
        }
      }

      if (o.only.has('stream')) {
        p.log(`bench: streamed (time to first token), ${o.seconds} s per cell after ${o.warmupSeconds} s warm-up`);
        for (const c of o.streamConcurrency) {
          const pools = { direct: pool(sim.origin, c), proxy: pool(proxy.origin, c), gateway: pool(gw.origin, c) };
          const direct = await run('stream', 'direct', c, sseOp(pools.direct));
          const viaProxy = await run('stream', 'proxy', c, sseOp(pools.proxy));
          const clients: Client[] = Array.from({ length: c }, () => wsClient(gw.graphqlUrl, tenant.key));
          await Promise.all(clients.map((x) => connected(x)));
          const gateway = await run('stream', 'gateway', c, gatewayStreamOp(clients));
          const openai = await run('stream', 'openai', c, sseOp(pools.gateway, upstreamBody(true, PROFILE), { authorization: `Bearer ${tenant.key}` }));
          await Promise.all([...clients.map((x) => x.dispose()), ...Object.values(pools).map((x) => x.close())]);
          streamed[String(c)] = streamCell(direct, viaProxy, gateway, openai);
        }
      }

      noteLogs(gw.child);
      await Promise.all([stopChild(gw.child), stopChild(proxy.child), stopChild(sim.child)]);
    }

    if (o.only.has('hold') && o.streams > 0) {
      const streamSeconds = STREAM_SECONDS_AT_SCALE_1 * o.streamScale;
      p.log(
        `bench: many streams: ${o.streams} subscriptions through a second gateway over a simulator at SIM_LATENCY_SCALE=${o.streamScale} (~${streamSeconds.toFixed(1)} s per stream)`,
      );
      const slow = track(await startSimulatorChild(o.streamScale, 'slow simulator'));
      // The first-token deadline is computed from the model table, not from the slowed simulator: widen its floor.
      const floor = Math.ceil(180 * o.streamScale * 3 + 5000);
      const gw2 = track(await startGatewayChild(gwEnv(slow.url, { FIRST_TOKEN_FLOOR_MS: String(floor) }), 'gateway (streams)', profArgs('streams')));
      const t = await createBenchTenant(gw2.graphqlUrl, o.adminKey, `bench-streams-${Date.now().toString(36)}`);
      manyStreams = await holdStreams({
        graphqlUrl: gw2.graphqlUrl,
        origin: gw2.origin,
        key: t.key,
        gatewayPid: gw2.child.pid,
        simOrigin: slow.origin,
        streams: o.streams,
        windowSeconds: o.holdSeconds,
        streamSecondsExpected: streamSeconds,
        openConcurrency: o.openConcurrency,
        progress: p,
      });
      const h = manyStreams;
      p.log(
        `  many streams: ${h.streamsOpenAtEnd}/${h.streamsRequested} flowing, ${h.subscriptionsOpenAtEnd} subscribed (upstream max ${h.upstreamStreamsMax}); RSS ${(h.rssBeforeBytes / 2 ** 20).toFixed(0)} -> ${(h.rssDuringBytes / 2 ** 20).toFixed(0)} MiB = ${h.rssPerSubscriptionKiB} KiB/subscription; ` +
          `event-loop delay p99 ${h.eventLoopDelayMs.p99} ms (idle ${h.eventLoopDelayIdleMs.p99}); /healthz p99 ${h.healthzMs.p99} ms`,
      );
      noteLogs(gw2.child);
      await Promise.all([stopChild(gw2.child), stopChild(slow.child)]);
    }

    if (o.only.has('parts') && microTenant) {
      p.log(`bench: the parts alone, ~${o.microSeconds} s each, one at a time`);
      parts = await microBench({
        databaseUrl: o.databaseUrl,
        redisUrl: o.redisUrl,
        tenantId: microTenant.id,
        apiKeyId: null,
        seconds: o.microSeconds,
        progress: p,
      });
    }
  } finally {
    await Promise.all([...children].map((c) => c.stop()));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const partial = { nonStreamed, streamed, manyStreams };
  const date = today();
  const jsonPath = path.join(o.outDir, `${date}${o.tag ? `-${o.tag}` : o.cpuProfDir ? '-profiled' : ''}.json`);
  const rel = path.relative(ROOT, jsonPath);
  const results: BenchResults = {
    schema: 1,
    kind: 'llm-gateway-bench',
    date,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machineAtStart, loadAverageAtEnd: machineInfo().loadAverageAtStart },
    versions: vers,
    settings: {
      seconds: o.seconds,
      warmupSeconds: o.warmupSeconds,
      concurrency: o.concurrency,
      streamConcurrency: o.streamConcurrency,
      streams: o.streams,
      holdSeconds: o.holdSeconds,
      streamScale: o.streamScale,
      pgSyncCommitDiagnostic: o.pgSyncCommit,
      cpuProfiled: o.cpuProfDir !== null,
      microSeconds: o.microSeconds,
      gatewayNodeEnv: 'production',
      prompt: PROMPT,
      profile: PROFILE,
      maxTokens: MAX_TOKENS,
      tenantId,
    },
    nonStreamed,
    streamed,
    manyStreams,
    parts,
    goals: judgeGoals(partial, Math.max(1000, o.streams)),
    gatewayLogLines: logLines,
    gatewayLogTail: logTail.slice(-4000),
    jsonPath: rel.startsWith('..') ? jsonPath : rel,
  };
  writeAtomic(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  p.log(`bench: wrote ${jsonPath}`);
  if (o.markdown) {
    refreshSection(o.markdown, MARK_START, MARK_END, renderMarkdown(results), '## Latest run (generated by `npm run bench`)');
    p.log(`bench: refreshed ${o.markdown}`);
  }
  return { results, jsonPath };
}

function redact(u: string): string {
  try {
    const x = new URL(u);
    if (x.password) x.password = '***';
    return x.toString();
  } catch {
    return u;
  }
}
