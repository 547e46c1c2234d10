import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LoadResult } from './load';
import type { ToolChoice } from './peers-options';
import { cpuMs } from './procs';
import { EMPTY_SUMMARY, round, roundSummary, type Summary } from './stats';

/** One closed-loop run of one POST: `concurrency` connections, one request in flight on each. */
export interface LoadSpec {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Text every good answer contains: a 200 without it (a GraphQL error, say) counts as an error. */
  readonly expect: string;
  readonly concurrency: number;
  readonly seconds: number;
  /** Processes whose CPU is read around the run (the load generator's own is not among them). */
  readonly pids: Record<string, number>;
}

export interface LoadTool {
  readonly name: 'wrk' | 'autocannon';
  readonly version: string;
  /** What limits the figures (autocannon's latency histogram has whole-millisecond buckets). */
  readonly note: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

const AUTOCANNON_VERSION = '8.0.0';

function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function tryRun(cmd: string, args: string[], log: (s: string) => void): boolean {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return true;
  } catch (e) {
    log(
      `  ${cmd} ${args.join(' ')} failed: ${String((e as { stderr?: Buffer }).stderr ?? e)
        .trim()
        .split('\n')
        .pop()}`,
    );
    return false;
  }
}

/** Debian's wrk, installed when missing and allowed (root with apt-get): the package list is refreshed only if needed. */
function ensureWrk(install: boolean, log: (s: string) => void): boolean {
  if (onPath('wrk')) return true;
  if (!install || process.getuid?.() !== 0 || !onPath('apt-get')) return false;
  log('load generator: installing wrk with apt-get');
  const args = ['install', '-y', '--no-install-recommends', 'wrk'];
  return tryRun('apt-get', args, log) || (tryRun('apt-get', ['update'], log) && tryRun('apt-get', args, log));
}

/** autocannon from npm, into the scratch folder (never a dependency of the project). */
function ensureAutocannon(scratchDir: string, install: boolean, log: (s: string) => void): string {
  const dir = path.join(scratchDir, `autocannon-${AUTOCANNON_VERSION}`);
  const entry = path.join(dir, 'node_modules', 'autocannon', 'autocannon.js');
  if (existsSync(entry)) return entry;
  if (!install) throw new Error(`autocannon is not installed in ${dir} and --no-install was given`);
  log(`load generator: installing autocannon ${AUTOCANNON_VERSION} into ${dir}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'bench-peers-autocannon', private: true, dependencies: { autocannon: AUTOCANNON_VERSION } }),
  );
  npmInstall(dir);
  return entry;
}

/** `npm install` in a scratch folder; its output is shown only when it fails. */
export function npmInstall(dir: string): void {
  try {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=dev'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`npm install in ${dir} failed:\n${String(err.stdout ?? '')}${String(err.stderr ?? '')}`.slice(0, 4000), { cause: e });
  }
}

/**
 * wrk when it is there or can be installed, autocannon otherwise (or as asked). Either runs as a child of this
 * process and so on the CPU this process is pinned to.
 */
export function resolveLoadTool(o: { choice: ToolChoice; install: boolean; scratchDir: string; workDir: string; log: (s: string) => void }): LoadTool {
  if (o.choice !== 'autocannon') {
    if (ensureWrk(o.install, o.log)) return wrkTool(o.workDir);
    if (o.choice === 'wrk') throw new Error('wrk is not installed and could not be installed (needs root and apt-get; or pass --tool autocannon)');
    o.log('load generator: wrk is not available, falling back to autocannon');
  }
  return autocannonTool(ensureAutocannon(o.scratchDir, o.install, o.log));
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

/** CPU of `pids` during `work`, as ms per request and share of one core. */
async function withCpu<T extends { requests: number }>(pids: Record<string, number>, seconds: number, work: () => Promise<T>) {
  const read = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const before = read();
  const r = await work();
  const after = read();
  const cpuMsPerRequest: Record<string, number> = {};
  const cpuCores: Record<string, number> = {};
  for (const k of Object.keys(pids)) {
    const used = after[k]! - before[k]!;
    cpuMsPerRequest[k] = round(r.requests ? used / r.requests : NaN, 4);
    cpuCores[k] = round(used / (seconds * 1000), 3);
  }
  return { ...r, cpuMsPerRequest, cpuCores };
}

const luaString = (s: string) => JSON.stringify(s).replace(/\\u([0-9a-f]{4})/gi, (_m, h: string) => `\\${parseInt(h, 16)}`);

/**
 * The wrk script: the request, a body check per answer (counted per thread, summed in done()), and one JSON line of
 * the run's figures (latencies in microseconds from wrk's own histogram).
 */
export function wrkScript(spec: Pick<LoadSpec, 'headers' | 'body' | 'expect'>): string {
  if (spec.body.includes(']==]')) throw new Error('request body contains the Lua long-string terminator');
  const headers = Object.entries(spec.headers)
    .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
    .join('\n');
  return `wrk.method = "POST"
wrk.body = [==[${spec.body}]==]
${headers}
local expect = ${luaString(spec.expect)}
local threads = {}
bad = 0
firstbad = nil
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect, 1, true) then
    bad = bad + 1
    if firstbad == nil then firstbad = "HTTP " .. status .. " " .. string.sub(body or "", 1, 300) end
  end
end
function done(s, lat, req)
  local nbad, first = 0, nil
  for _, t in ipairs(threads) do
    nbad = nbad + t:get("bad")
    first = first or t:get("firstbad")
  end
  if first then io.write("WRKBAD " .. string.gsub(first, "\\n", " ") .. "\\n") end
  io.write(string.format('WRKJSON {"requests":%d,"durationUs":%d,"bad":%d,"socketErrors":%d,"minUs":%d,"meanUs":%.3f,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d}\\n',
    s.requests, s.duration, nbad, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
    lat.min, lat.mean, lat:percentile(50), lat:percentile(90), lat:percentile(99), lat.max))
end
`;
}

interface WrkFigures {
  requests: number;
  durationUs: number;
  bad: number;
  socketErrors: number;
  minUs: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

/** Reads the WRKJSON (and WRKBAD) lines of a wrk run into the project's load result shape. */
export function parseWrkOutput(out: string, concurrency: number, seconds: number): Omit<LoadResult, 'cpuMsPerRequest' | 'cpuCores'> {
  const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no result:\n${out.slice(-2000)}`);
  const j = JSON.parse(line.slice('WRKJSON '.length)) as WrkFigures;
  const bad = out.split('\n').find((l) => l.startsWith('WRKBAD '));
  const errors = j.bad + j.socketErrors;
  const ms = (us: number) => us / 1000;
  const latencyMs: Summary = j.requests
    ? { n: j.requests, min: ms(j.minUs), mean: ms(j.meanUs), p50: ms(j.p50Us), p90: ms(j.p90Us), p99: ms(j.p99Us), max: ms(j.maxUs) }
    : EMPTY_SUMMARY;
  return {
    concurrency,
    seconds,
    requests: j.requests - j.bad,
    errors,
    firstError: bad ? bad.slice('WRKBAD '.length) : j.socketErrors ? `${j.socketErrors} socket errors or timeouts` : null,
    rps: round((j.requests - j.bad) / (j.durationUs / 1e6), 1),
    latencyMs: roundSummary(latencyMs),
    ttftMs: null,
  };
}

function wrkTool(workDir: string): LoadTool {
  // `wrk -v` prints "wrk <version> [<engine>] Copyright ..." (and exits 1).
  const banner = execFileSync('sh', ['-c', 'wrk -v 2>&1 | head -1 || true']).toString().trim();
  const version = /^wrk (\S+)/.exec(banner)?.[1] ?? banner;
  let seq = 0;
  return {
    name: 'wrk',
    version,
    note: 'wrk, one thread; latency percentiles from its own histogram (microseconds)',
    async run(spec) {
      mkdirSync(workDir, { recursive: true });
      const script = path.join(workDir, `wrk-${++seq}.lua`);
      writeFileSync(script, wrkScript(spec));
      return withCpu(spec.pids, spec.seconds, async () => {
        const r = await run('wrk', ['-t', '1', '-c', String(spec.concurrency), '-d', `${spec.seconds}s`, '--timeout', '10s', '-s', script, spec.url]);
        return parseWrkOutput(r.out + r.err, spec.concurrency, spec.seconds);
      });
    },
  };
}

function autocannonTool(entry: string): LoadTool {
  const version = (JSON.parse(readFileSync(path.join(path.dirname(entry), 'package.json'), 'utf8')) as { version: string }).version;
  return {
    name: 'autocannon',
    version,
    note: 'autocannon (wrk was not available): latency percentiles in whole milliseconds, so added latencies below ~1 ms are not resolved',
    async run(spec) {
      const headers = Object.entries(spec.headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]);
      const args = [entry, '-c', String(spec.concurrency), '-d', String(spec.seconds), '-m', 'POST', ...headers, '-b', spec.body, '--json', spec.url];
      return withCpu(spec.pids, spec.seconds, async () => {
        const r = await run(process.execPath, args);
        const last = r.out.trim().split('\n').pop() ?? '';
        let j: { requests: { total: number }; duration: number; errors: number; timeouts: number; non2xx: number; latency: Record<string, number> };
        try {
          j = JSON.parse(last) as typeof j;
        } catch {
          throw new Error(`autocannon printed no result:\n${(r.out + r.err).slice(-2000)}`);
        }
        const errors = j.errors + j.timeouts + j.non2xx;
        const l = j.latency;
        return {
          concurrency: spec.concurrency,
          seconds: spec.seconds,
          requests: j.requests.total - j.non2xx,
          errors,
          firstError: errors ? `${j.non2xx} non-2xx, ${j.errors} errors, ${j.timeouts} timeouts` : null,
          rps: round((j.requests.total - j.non2xx) / j.duration, 1),
          latencyMs: roundSummary({ n: j.requests.total, min: l.min!, mean: l.mean!, p50: l.p50!, p90: l.p90!, p99: l.p99!, max: l.max! }),
          ttftMs: null,
        };
      });
    },
  };
}
