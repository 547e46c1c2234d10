import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { MODEL, createBenchTenant } from './clients';
import { closedLoop, type LoadResult } from './load';
import { machineInfo, resetDatabase, serviceVersions, versions } from './machine';
import { resolveLoadTool, type LoadTool } from './peers-load';
import type { PeersOptions } from './peers-options';
import { installPortkey, pinProcess, startApolloHopChild, startPortkeyChild } from './peers-procs';
import {
  PEERS_MARK_END,
  PEERS_MARK_START,
  TARGET_LABELS,
  judgePeerGoals,
  peerRows,
  renderPeersMarkdown,
  type PeersResults,
  type TargetId,
  type TargetRun,
} from './peers-results';
import { checkTarget, graphqlTarget, openAiTarget, type Target } from './peers-targets';
import { ROOT, startGatewayChild, startProxyChild, startSimulatorChild, type Child } from './procs';
import { Progress } from './progress';
import { refreshSection, today, writeAtomic } from './results';

/** The load generator, the simulator and this process share CPU 0; every target runs alone on CPU 1. */
const LOAD_CPU = 0;
const TARGET_CPU = 1;
/** Portkey's routing headers: the OpenAI provider, at the simulator. */
const portkeyHeaders = (upstreamUrl: string) => ({ 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamUrl });

/**
 * `npm run bench:peers`: the simulator (no latency) as the upstream of every target, the targets as separate child
 * processes (the bare undici hop, the bare Apollo hop, Portkey, the gateway with every check on), closed-loop
 * non-streamed load from wrk (or autocannon), streamed time to first token from this process, at every answer
 * length. Writes <outDir>/peers-<date>.json and .md and refreshes BENCHMARKS.md's peers section.
 */
export async function runPeers(o: PeersOptions): Promise<{ results: PeersResults; jsonPath: string; mdPath: string }> {
  const p = new Progress(o.quiet);
  const log = (s: string) => p.log(s);
  const startedAt = new Date();
  const t0 = performance.now();
  const machineAtStart = machineInfo();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bench-peers-run-'));
  const children = new Set<Child>();
  const track = <T extends { child: Child }>(x: T): T => (children.add(x.child), x);
  const onSignal = () => {
    p.log('interrupted: stopping the child processes');
    void Promise.all([...children].map((c) => c.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const vers: Record<string, string> = versions();
  const runs: PeersResults['runs'] = {};
  const skipped: PeersResults['skipped'] = {};
  let pinning: PeersResults['pinning'] = { enabled: false, loadAndUpstreamCpu: null, targetCpu: null, detail: 'off (--no-pin)' };
  let tool: LoadTool | undefined;
  let gatewayChild: Child | undefined;
  const targets: Target[] = [];

  try {
    tool = resolveLoadTool({ choice: o.tool, install: o.install, scratchDir: o.scratchDir, workDir, log });
    vers[tool.name] = tool.version;
    log(`bench:peers: load generator ${tool.name} ${tool.version}`);
    const portkey = o.portkey ? installPortkey(o.scratchDir, o.install, log) : null;
    if (portkey) vers['@portkey-ai/gateway'] = portkey.version;

    log(`bench:peers: resetting the scratch database ${o.databaseUrl} (the gateway creates, migrates and seeds it)`);
    await resetDatabase(o.databaseUrl);
    const redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    Object.assign(vers, await serviceVersions(o.databaseUrl.replace(/\/[^/]*$/, '/postgres'), () => redis.info('server')));
    redis.disconnect();

    log('bench:peers: starting the simulator (SIM_LATENCY_SCALE=0) and the targets as child processes');
    const started = await startTargets(o, portkey?.entry ?? null, track);
    gatewayChild = started.gatewayChild;
    targets.push(...started.targets);
    log(`bench:peers: ${targets.map((t) => `${t.id} pid ${t.pid}`).join(', ')}; gateway tenant ${started.tenantId} (budget $1,000,000, limits 2e9/min)`);

    if (o.pin) pinning = pinAll(started.simulatorPid, targets);
    log(`bench:peers: pinning: ${pinning.detail}`);

    for (const tokens of o.answers) {
      for (const t of targets) {
        if (skipped[t.id]) continue;
        const why = await checkTarget(t, tokens);
        if (why) {
          skipped[t.id] = `${tokens}-token answers: ${why}`;
          log(`bench:peers: ${t.id} is not measured: ${why}`);
        }
      }
    }
    const live = targets.filter((t) => !skipped[t.id]);
    if (!live.some((t) => t.id === 'direct')) throw new Error(`the direct call to the simulator fails: ${skipped.direct}`);

    Object.assign(runs, await measureAll(o, live, tool, p));
  } finally {
    await Promise.all([...children].map((c) => c.stop()));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(workDir, { recursive: true, force: true });
  }

  const date = today();
  const jsonPath = path.join(o.outDir, `peers-${date}.json`);
  const mdPath = path.join(o.outDir, `peers-${date}.md`);
  const rel = path.relative(ROOT, jsonPath);
  const rows = peerRows(runs);
  const results: PeersResults = {
    schema: 1,
    kind: 'llm-gateway-peers',
    date,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machineAtStart, loadAverageAtEnd: machineInfo().loadAverageAtStart },
    versions: vers,
    loadGenerator: { name: tool.name, version: tool.version, note: tool.note },
    pinning,
    settings: {
      seconds: o.seconds,
      warmupSeconds: o.warmupSeconds,
      prewarmSeconds: o.prewarmSeconds,
      streamSeconds: o.streamSeconds,
      streamWarmupSeconds: o.streamWarmupSeconds,
      concurrency: o.concurrency,
      streamConcurrency: o.streamConcurrency,
      answers: o.answers,
      upstream: 'the project simulator, SIM_LATENCY_SCALE=0',
      model: MODEL,
      gatewayNodeEnv: 'production',
    },
    targets: targets.map((t) => t.id),
    skipped,
    runs,
    rows,
    goals: judgePeerGoals(rows),
    gatewayLogLines: gatewayChild?.lineCount() ?? 0,
    gatewayLogTail: gatewayChild?.tail().slice(-4000) ?? '',
    jsonPath: rel.startsWith('..') ? jsonPath : rel,
  };
  const md = renderPeersMarkdown(results);
  writeAtomic(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  writeAtomic(mdPath, `${md}\n`);
  p.log(`bench:peers: wrote ${jsonPath} and ${mdPath}`);
  if (o.markdown) {
    refreshSection(o.markdown, PEERS_MARK_START, PEERS_MARK_END, md, '## Side by side with peers (generated by `npm run bench:peers`)');
    p.log(`bench:peers: refreshed ${o.markdown}`);
  }
  return { results, jsonPath, mdPath };
}

/** The simulator, then every target in front of it at once; the gateway's tenant has every check on and is never refused. */
async function startTargets(o: PeersOptions, portkeyEntry: string | null, track: <T extends { child: Child }>(x: T) => T) {
  const sim = track(await startSimulatorChild(0));
  const [undici, apollo, pk, gw] = await Promise.all([
    startProxyChild(sim.origin).then(track),
    startApolloHopChild(sim.url, MODEL).then(track),
    portkeyEntry ? startPortkeyChild(portkeyEntry).then(track) : Promise.resolve(null),
    startGatewayChild({ databaseUrl: o.databaseUrl, redisUrl: o.redisUrl, adminKey: o.adminKey, upstreamUrl: sim.url }).then(track),
  ]);
  const tenant = await createBenchTenant(gw.graphqlUrl, o.adminKey, `bench-peers-${Date.now().toString(36)}`);
  const targets: Target[] = [
    openAiTarget('direct', sim.child.pid, sim.origin),
    openAiTarget('undici', undici.child.pid, undici.origin),
    graphqlTarget('apollo', apollo.child.pid, apollo.graphqlUrl, 'no-checks'),
    ...(pk ? [openAiTarget('portkey', pk.child.pid, pk.origin, portkeyHeaders(sim.url))] : []),
    graphqlTarget('gateway', gw.child.pid, gw.graphqlUrl, tenant.key),
  ];
  return { targets, simulatorPid: sim.child.pid, gatewayChild: gw.child, tenantId: tenant.id };
}

/**
 * Pre-warm, then per answer length: non-streamed cells (every target at one concurrency before the next, so
 * neighbours in the table are measured minutes apart at most), then streamed cells.
 */
async function measureAll(o: PeersOptions, live: readonly Target[], tool: LoadTool, p: Progress): Promise<PeersResults['runs']> {
  const runs: PeersResults['runs'] = {};
  const pids = Object.fromEntries(live.map((t) => [t.id, t.pid]));
  const load = async (t: Target, tokens: number, c: number, seconds: number): Promise<LoadResult> => {
    p.status(`${t.id} ${tokens} tokens c=${c} ${seconds} s`);
    return tool.run({ ...t.request(tokens), concurrency: c, seconds, pids });
  };
  const errorsOf = (r: LoadResult) => (r.errors ? `  ${r.errors} errors (${r.firstError})` : '');
  if (o.prewarmSeconds > 0) {
    for (const t of live) {
      const r = await load(t, o.answers[0]!, 16, o.prewarmSeconds);
      p.log(`  pre-warm ${t.id.padEnd(8)} c=16 ${o.prewarmSeconds} s: ${r.rps} req/s${errorsOf(r)}`);
    }
  }
  for (const tokens of o.answers) {
    const byTarget: Partial<Record<TargetId, TargetRun>> = Object.fromEntries(live.map((t) => [t.id, { nonStreamed: {}, streamed: {} }]));
    runs[String(tokens)] = byTarget;
    p.log(`bench:peers: ${tokens}-token answers, non-streamed, ${o.seconds} s per cell after ${o.warmupSeconds} s warm-up`);
    for (const c of o.concurrency) {
      for (const t of live) {
        if (o.warmupSeconds > 0) await load(t, tokens, c, o.warmupSeconds);
        const r = await load(t, tokens, c, o.seconds);
        byTarget[t.id]!.nonStreamed[String(c)] = r;
        p.log(
          `  ${t.id.padEnd(8)} c=${String(c).padEnd(3)} ${String(r.rps).padStart(9)} req/s  p50 ${r.latencyMs.p50.toFixed(3).padStart(8)} ms  p99 ${r.latencyMs.p99.toFixed(3).padStart(8)} ms${errorsOf(r)}`,
        );
      }
    }
    p.log(`bench:peers: ${tokens}-token answers, streamed, ${o.streamSeconds} s per cell after ${o.streamWarmupSeconds} s warm-up`);
    for (const c of o.streamConcurrency) {
      for (const t of live) {
        const s = await t.openStreams(tokens, c);
        try {
          const r = await closedLoop({
            label: `stream ${t.id}`,
            concurrency: c,
            warmupS: o.streamWarmupSeconds,
            seconds: o.streamSeconds,
            progress: p,
            pids,
            op: s.op,
          });
          byTarget[t.id]!.streamed[String(c)] = r;
          p.log(
            `  ${t.id.padEnd(8)} c=${String(c).padEnd(3)} ${String(r.rps).padStart(9)} streams/s  TTFT p50 ${(r.ttftMs?.p50 ?? NaN).toFixed(3).padStart(8)} ms  p99 ${(r.ttftMs?.p99 ?? NaN).toFixed(3).padStart(8)} ms${errorsOf(r)}`,
          );
        } finally {
          await s.close();
        }
      }
    }
  }
  return runs;
}

/** This process (and so the load generators it spawns) and the simulator on CPU 0, each target on CPU 1. */
function pinAll(simulatorPid: number, targets: readonly Target[]): PeersResults['pinning'] {
  const failed: string[] = [];
  if (!pinProcess(process.pid, LOAD_CPU)) failed.push('load generator');
  if (!pinProcess(simulatorPid, LOAD_CPU)) failed.push('simulator');
  for (const t of targets) if (t.id !== 'direct' && !pinProcess(t.pid, TARGET_CPU)) failed.push(TARGET_LABELS[t.id]);
  if (failed.length) {
    // All or nothing: a half-pinned run would measure some targets against a crowded core and others not.
    for (const pid of [process.pid, simulatorPid, ...targets.map((t) => t.pid)]) pinProcess(pid, null);
    return { enabled: false, loadAndUpstreamCpu: null, targetCpu: null, detail: `none (taskset failed or fewer than 2 cores: ${failed.join(', ')})` };
  }
  return {
    enabled: true,
    loadAndUpstreamCpu: LOAD_CPU,
    targetCpu: TARGET_CPU,
    detail: `load generator, stream client and simulator on CPU ${LOAD_CPU}; each target on CPU ${TARGET_CPU} (Postgres and Redis unpinned)`,
  };
}
