import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';

const ROOT = path.resolve(__dirname, '../..');

export interface ScriptRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a TypeScript script of the repository (through tsx) as a child; SIGINT after `timeoutMs`. */
export function runTsScript(script: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<ScriptRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--require', 'tsx/cjs', script, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => p.kill('SIGINT'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Drops the database a URL names (a scratch database of one run), connecting to the server's `postgres`. */
export async function dropDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => c.end());
}
