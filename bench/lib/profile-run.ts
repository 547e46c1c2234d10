import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'undici';
import { CHAT_DOC, CHAT_INPUT, createBenchTenant, gqlRequest, pool } from './clients';
import type { Profile } from './cpuprofile';
import { closedLoop, type LoadResult, type OpSample } from './load';
import { machineInfo, resetDatabase, versions } from './machine';
import { areasInWindow, type AreaRow } from './profile-areas';
import { cpuMs, startGatewayChild, startSimulatorChild, type Child } from './procs';
import { Progress } from './progress';
import { Samples, roundSummary, type Summary } from './stats';

export interface ProfileOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: number[];
  readonly answerTokens: number;
  readonly refusals: number;
  readonly outDir: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly adminKey: string;
}

export interface PhaseProfile {
  readonly concurrency: number;
  readonly load: LoadResult;
  /** Busy (non-idle) main-thread time in the measured window, per request. */
  readonly busyMsPerRequest: number;
  readonly areas: ReadonlyArray<AreaRow & { readonly msPerRequest: number }>;
}

export interface RefusalCost {
  readonly code: string;
  readonly requests: number;
  /** Gateway process CPU (all threads, /proc) per refused request, microseconds. */
  readonly cpuUsPerRequest: number;
  readonly latencyMs: Summary;
}

const chatOp = (p: Pool, key: string, maxTokens: number, expect: (body: { data?: any; errors?: any[] }) => boolean) => {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
  const body = JSON.stringify({ query: CHAT_DOC, operationName: 'Chat', variables: { input: { ...CHAT_INPUT, maxTokens } } });
  return async (): Promise<OpSample> => {
    const t = performance.now();
    const r = await p.request({ method: 'POST', path: '/graphql', headers, body });
    const parsed = (await r.body.json()) as { data?: any; errors?: any[] };
    const ms = performance.now() - t;
    return expect(parsed) ? { ok: true, ms } : { ok: false, ms, error: JSON.stringify(parsed).slice(0, 300) };
  };
};
const answered = (b: { data?: any; errors?: any[] }) => !b.errors?.length && typeof b.data?.chat?.content === 'string';
const refusedWith = (code: string) => (b: { data?: any; errors?: any[] }) => b.errors?.[0]?.extensions?.code === code;

/**
 * `npm run bench:profile`: the gateway as a child under `node --cpu-prof`, one child per concurrency (so each
 * profile holds one load), chat mutations with `answerTokens`-chunk answers from the simulator (latency scale 0);
 * the measured window of each profile summarised by area. Then, in an unprofiled child, the CPU of refused requests.
 */
export async function runProfile(
  o: ProfileOptions,
  p = new Progress(),
): Promise<{ mdPath: string; jsonPath: string; phases: PhaseProfile[]; refusals: RefusalCost[] }> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bench-profile-'));
  const machine = machineInfo();
  const children: Child[] = [];
  try {
    p.log(`bench:profile: resetting ${o.databaseUrl}; simulator at SIM_LATENCY_SCALE=0`);
    await resetDatabase(o.databaseUrl);
    const sim = await startSimulatorChild(0);
    children.push(sim.child);
    const env = { databaseUrl: o.databaseUrl, redisUrl: o.redisUrl, adminKey: o.adminKey, upstreamUrl: sim.url };
    const phases: PhaseProfile[] = [];
    let key: string | null = null;
    for (const c of o.concurrency) {
      const dir = path.join(workDir, `c${c}`);
      mkdirSync(dir);
      const spawnAt = performance.now();
      const gw = await startGatewayChild(env, `gateway c=${c}`, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
      children.push(gw.child);
      key ??= (await createBenchTenant(gw.graphqlUrl, o.adminKey, `bench-profile-${Date.now().toString(36)}`)).key;
      const http = pool(gw.origin, c);
      const loopAt = performance.now();
      const load = await closedLoop({
        label: 'profile',
        concurrency: c,
        warmupS: o.warmupSeconds,
        seconds: o.seconds,
        progress: p,
        pids: { gateway: gw.child.pid },
        op: chatOp(http, key, o.answerTokens, answered),
      });
      await http.close();
      await gw.child.stop();
      const from = loopAt - spawnAt + o.warmupSeconds * 1000;
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
      const prof = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Profile;
      const { busyMs, rows } = areasInWindow(prof, from, from + o.seconds * 1000);
      const n = Math.max(1, load.requests);
      phases.push({ concurrency: c, load, busyMsPerRequest: round3(busyMs / n), areas: rows.map((r) => ({ ...r, msPerRequest: round3(r.ms / n) })) });
      p.log(`c=${c}: ${load.requests} requests, ${load.errors} errors, p50 ${load.latencyMs.p50} ms, busy ${round3(busyMs / n)} ms/request`);
    }
    const refusals = await measureRefusals(o, env, children, p);
    const stamp = new Date().toISOString().slice(0, 10);
    mkdirSync(o.outDir, { recursive: true });
    const jsonPath = path.join(o.outDir, `profile-${stamp}.json`);
    const mdPath = path.join(o.outDir, `profile-${stamp}.md`);
    const results = {
      date: new Date().toISOString(),
      machine,
      machineAtEnd: machineInfo(),
      versions: versions(),
      options: { ...o, adminKey: undefined },
      phases,
      refusals,
    };
    writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(mdPath, renderProfile(results));
    return { mdPath, jsonPath, phases, refusals };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Refused requests one at a time (rate and budget), in a child without the profiler: the gateway's CPU per refusal. */
async function measureRefusals(o: ProfileOptions, env: Parameters<typeof startGatewayChild>[0], children: Child[], p: Progress): Promise<RefusalCost[]> {
  const gw = await startGatewayChild(env, 'gateway (refusals)');
  children.push(gw.child);
  const admin = (input: Record<string, unknown>) =>
    gqlRequest(gw.graphqlUrl, o.adminKey, `mutation($input: CreateTenantInput!) { createTenant(input: $input) { apiKey { key } } }`, { input });
  const stamp = Date.now().toString(36);
  const limited = (await admin({ name: `bench-refused-rate-${stamp}`, requestsPerMinute: 1 })).data!.createTenant.apiKey.key as string;
  const broke = (await admin({ name: `bench-refused-budget-${stamp}`, monthlyBudgetUsd: '0.000001' })).data!.createTenant.apiKey.key as string;
  const http = pool(gw.origin, 1);
  const out: RefusalCost[] = [];
  try {
    for (const [code, k] of [
      ['RATE_LIMITED', limited],
      ['BUDGET_EXCEEDED', broke],
    ] as const) {
      const op = chatOp(http, k, o.answerTokens, code === 'RATE_LIMITED' ? (b) => answered(b) || refusedWith(code)(b) : refusedWith(code));
      for (let i = 0; i < Math.min(500, o.refusals); i++) await op(); // warm-up (the JIT, the caches; the minute's one request)
      const lat = new Samples();
      const cpu0 = cpuMs(gw.child.pid);
      for (let i = 0; i < o.refusals; i++) {
        const r = await op();
        if (!r.ok) throw new Error(`expected ${code}, got ${r.error}`);
        lat.push(r.ms);
      }
      const cpuUs = ((cpuMs(gw.child.pid) - cpu0) * 1000) / o.refusals;
      out.push({ code, requests: o.refusals, cpuUsPerRequest: Math.round(cpuUs), latencyMs: roundSummary(lat.summary()) });
      p.log(`refused ${code}: ${Math.round(cpuUs)} µs of gateway CPU each`);
    }
  } finally {
    await http.close();
  }
  return out;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

function renderProfile(r: {
  date: string;
  machine: ReturnType<typeof machineInfo>;
  machineAtEnd: ReturnType<typeof machineInfo>;
  options: Omit<ProfileOptions, 'adminKey'>;
  phases: PhaseProfile[];
  refusals: RefusalCost[];
}): string {
  const o = r.options;
  const lines = [
    `# Hot-path profile, ${r.date.slice(0, 10)} (\`npm run bench:profile\`)`,
    '',
    `- Machine: ${r.machine.cores} cores (${r.machine.cpuModel}); load average ${r.machine.loadAverageAtStart.join(' / ')} at start, ${r.machineAtEnd.loadAverageAtStart.join(' / ')} at the end. Figures under load from other processes are not final.`,
    `- Load: \`chat\` mutations over HTTP, ${o.answerTokens}-chunk answers from the simulator (SIM_LATENCY_SCALE=0), closed loop, ${o.warmupSeconds} s warm-up then ${o.seconds} s measured, one gateway child per concurrency under \`node --cpu-prof\` (the sampler itself costs a few % of CPU); only the measured window of each profile is summarised (aligned to the child's spawn: the profiler starts with node, tens of ms later).`,
    '- Areas: self time of the gateway main thread by library (or the project\'s src/ folder); "ms/request" = area time in the window / requests completed in it. Samples are wall-clock intervals: on a busy machine the time the process waited for a core shows up, mostly as (program).',
    '',
  ];
  for (const ph of r.phases) {
    const l = ph.load;
    lines.push(
      `## c=${ph.concurrency}: ${l.rps} req/s, p50 ${l.latencyMs.p50} ms, p99 ${l.latencyMs.p99} ms, ${l.errors} errors; gateway CPU ${l.cpuMsPerRequest.gateway} ms/request (/proc), main thread busy ${ph.busyMsPerRequest} ms/request`,
      '',
      '| area | ms/request | % of busy |',
      '|---|---|---|',
      ...ph.areas.map((a) => `| ${a.area} | ${a.msPerRequest} | ${a.share} |`),
      '',
    );
  }
  lines.push(
    `## Refused requests (one at a time, ${o.refusals} each, gateway without the profiler)`,
    '',
    '| refusal | gateway CPU µs/request | p50 ms | p99 ms |',
    '|---|---|---|---|',
    ...r.refusals.map((x) => `| ${x.code} | ${x.cpuUsPerRequest} | ${x.latencyMs.p50} | ${x.latencyMs.p99} |`),
    '',
  );
  return lines.join('\n');
}
