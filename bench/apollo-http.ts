/**
 * CPU per HTTP GraphQL request of the server process, A/B: each entry (a built bundle, default dist/main.js) runs as
 * its own process, takes WARMUP then N requests, and reports the process's user+system CPU per request, read from
 * /proc (the client's CPU is not counted). Entries alternate for ROUNDS rounds so drift on a shared machine hits both.
 *
 *   npm run build && cp dist/main.js dist/a.js   # variant A; change the code, then
 *   npm run build && cp dist/main.js dist/b.js   # variant B
 *   DATABASE_URL=... REDIS_URL=... npx tsx bench/apollo-http.ts dist/a.js dist/b.js
 *
 * The operation is `{ models { id } }` under the admin key: no Postgres or Redis statement, so what is measured is
 * the HTTP path (express, Apollo, plugins, context) plus a trivial resolver. QUERY_KEY=tenant uses a tenant key.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';
import { createBenchTenant } from './lib/clients';

const N = Number(process.env.N ?? 4000);
const WARMUP = Number(process.env.WARMUP ?? 1500);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const QUERY = JSON.stringify({ query: '{ models { id } }' });
const TICK_US = 1e6 / 100; // /proc/<pid>/stat counts in USER_HZ (100 on Linux)

function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US; // utime, stime
}

async function start(entry: string): Promise<{ pid: number; url: string; stop: () => Promise<void> }> {
  const env = { ...process.env, PORT: '0', SIM_PORT: '0', LOG_LEVEL: 'info', ADMIN_API_KEY: ADMIN_KEY, NODE_ENV: 'development' };
  // A .ts entry runs through tsx (readable profiles); CPU_PROF_DIR writes a V8 profile (bench/lib/cpuprofile.ts reads it).
  const args = [
    ...(entry.endsWith('.ts') ? ['--import', 'tsx'] : []),
    ...(process.env.CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF_DIR}`] : []),
    entry,
  ];
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    void exited.then(() => reject(new Error(`${entry} exited before listening`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.includes('"llm-gateway listening"')) resolve((JSON.parse(line) as { url: string }).url);
    });
  });
  return { pid: proc.pid!, url, stop: async () => void (proc.kill('SIGTERM'), await exited) };
}

async function load(pool: Pool, path: string, key: string, n: number): Promise<void> {
  let left = n;
  const worker = async () => {
    while (left-- > 0) {
      const r = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: QUERY });
      const body = await r.body.text();
      if (r.statusCode !== 200 || body.includes('"errors"')) throw new Error(`unexpected answer ${r.statusCode}: ${body.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function measure(entry: string): Promise<number> {
  const server = await start(entry);
  const u = new URL(server.url);
  const pool = new Pool(u.origin, { connections: CONCURRENCY, pipelining: 1 });
  try {
    const key = process.env.QUERY_KEY === 'tenant' ? (await createBenchTenant(server.url, ADMIN_KEY, `apollo-http-${Date.now()}`)).key : ADMIN_KEY;
    await load(pool, u.pathname, key, WARMUP);
    const before = cpuMicros(server.pid);
    await load(pool, u.pathname, key, N);
    return (cpuMicros(server.pid) - before) / N;
  } finally {
    await pool.close();
    await server.stop();
  }
}

async function main() {
  const entries = process.argv.slice(2).length ? process.argv.slice(2) : ['dist/main.js'];
  const runs = new Map<string, number[]>(entries.map((e) => [e, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const entry of entries) {
      const us = await measure(entry);
      runs.get(entry)!.push(us);
      process.stdout.write(`round ${round + 1} ${entry}: ${us.toFixed(1)} µs CPU/request\n`);
    }
  }
  for (const [entry, xs] of runs) {
    const sorted = [...xs].sort((a, b) => a - b);
    process.stdout.write(`${entry}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} µs, runs ${xs.map((x) => x.toFixed(1)).join(' ')}\n`);
  }
}

void main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
