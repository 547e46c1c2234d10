import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { request } from 'undici';

export const ROOT = path.resolve(__dirname, '../..');

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  /* Linux default */
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) may contain spaces: split after its closing parenthesis. utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / clkTck;
}

/** Resident set size of a process in bytes, from VmRSS in /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** CPU of this process (the load generator), ms. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** The last lines the child printed (stdout and stderr), for diagnostics. */
  tail(): string;
  /** Lines printed so far (the gateway logs at warn: each is a warning or an error). */
  lineCount(): number;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node --require tsx/cjs <script>` from the project root with `env` added to a minimal environment, and
 * waits for `ready()` to resolve (polled). Rejects with the child's output when it exits first or times out.
 */
export async function startChild(o: {
  name: string;
  script: string;
  env: Record<string, string>;
  ready: () => Promise<boolean>;
  timeoutMs?: number;
  nodeArgs?: string[];
  /** How long stop() waits after SIGTERM before SIGKILL; default 5 s. */
  stopGraceMs?: number;
}): Promise<Child> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...o.env };
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), '--require', 'tsx/cjs', o.script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let count = 0;
  const onData = (b: Buffer) => {
    for (const l of b.toString().split('\n')) {
      if (!l.trim()) continue;
      count++;
      lines.push(l.length > 600 ? `${l.slice(0, 600)}...` : l);
      if (lines.length > 40) lines.shift();
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  let exited: { code: number | null; signal: string | null } | null = null;
  const exit = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  const child: Child = {
    name: o.name,
    pid: proc.pid!,
    proc,
    tail: () => lines.join('\n'),
    lineCount: () => count,
    async stop(graceMs = o.stopGraceMs ?? 5_000) {
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => exited || proc.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  for (;;) {
    if (exited) throw new Error(`${o.name} exited during startup (${JSON.stringify(exited)}):\n${child.tail()}`);
    if (await o.ready().catch(() => false)) return child;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`${o.name} was not ready within ${o.timeoutMs ?? 90_000} ms:\n${child.tail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when GET url answers with `status`. */
export async function answers(url: string, status = 200, headers: Record<string, string> = {}): Promise<boolean> {
  const r = await request(url, { method: 'GET', headers, headersTimeout: 2000, bodyTimeout: 2000 });
  await r.body.dump();
  return r.statusCode === status;
}

export async function getText(url: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await request(url, { method: 'GET', headers });
  const t = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`GET ${url}: ${r.statusCode} ${t.slice(0, 200)}`);
  return t;
}

/** Starts the project's simulator as a child on a free port: { child, url (with /v1), origin }. */
export async function startSimulatorChild(latencyScale: number, name = 'simulator', extraEnv: Record<string, string> = {}) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name,
    script: 'src/simulator/main.ts',
    env: { SIM_PORT: String(port), SIM_LATENCY_SCALE: String(latencyScale), NODE_ENV: 'production', ADMIN_API_KEY: 'x'.repeat(32), ...extraEnv },
    ready: () => answers(`${origin}/__sim/stats`),
    timeoutMs: 30_000,
  });
  return { child, origin, url: `${origin}/v1` };
}

/** Starts the bare undici pass-through proxy (bench/lib/proxy-server.ts) in front of `upstreamOrigin`. */
export async function startProxyChild(upstreamOrigin: string) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: 'proxy',
    script: 'bench/lib/proxy-server.ts',
    env: { PROXY_PORT: String(port), PROXY_UPSTREAM: upstreamOrigin },
    ready: () => answers(`${origin}/__sim/stats`),
    timeoutMs: 30_000,
  });
  return { child, origin, url: `${origin}/v1` };
}

export interface GatewayEnv {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly adminKey: string;
  readonly upstreamUrl: string;
  readonly extra?: Record<string, string>;
}

/**
 * The gateway as it ships: `node --require tsx/cjs src/main.ts` (creates, migrates and seeds its database), with a
 * real upstream key so it talks to the given simulator and not an embedded one.
 */
export async function startGatewayChild(e: GatewayEnv, name = 'gateway', nodeArgs: string[] = []) {
  // Profiling needs a clean exit to write the profile. The gateway's SIGTERM drain currently hangs until main.ts's
  // 30 s force-exit (Apollo's own signal handlers race main.ts's; see BENCHMARKS.md), which still writes it.
  const profiling = nodeArgs.some((a) => a.startsWith('--cpu-prof'));
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name,
    script: 'src/main.ts',
    nodeArgs,
    env: {
      NODE_ENV: 'production',
      PORT: String(port),
      DATABASE_URL: e.databaseUrl,
      REDIS_URL: e.redisUrl,
      ADMIN_API_KEY: e.adminKey,
      GLOBAL_API_KEY: 'x',
      GLOBAL_API_BASE_URL: e.upstreamUrl,
      LOG_LEVEL: 'warn',
      ...e.extra,
    },
    ready: () => answers(`${origin}/healthz`),
    timeoutMs: 120_000,
    stopGraceMs: profiling ? 40_000 : Number(process.env.BENCH_STOP_GRACE_MS ?? 2_000),
  });
  return { child, origin, graphqlUrl: `${origin}/graphql` };
}
