import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ROOT } from './procs';

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly os: string;
  /** 1, 5 and 15 minute load averages: the machine is shared, and a busy neighbour shows here. */
  readonly loadAverageAtStart: number[];
  readonly loadAverageAtEnd?: number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
}

const DEPS = [
  '@apollo/server',
  '@as-integrations/express5',
  'express',
  'graphql',
  'graphql-ws',
  'ws',
  'undici',
  'ioredis',
  '@prisma/client',
  '@prisma/adapter-pg',
  'pg',
  'prom-client',
  'pino',
  'tsx',
];

/** Node and the installed versions of the dependencies on the request path. */
export function versions(): Record<string, string> {
  const out: Record<string, string> = { node: process.version };
  for (const d of DEPS) {
    try {
      out[d] = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', d, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      out[d] = 'missing';
    }
  }
  return out;
}

/** Postgres and Redis server versions (and Postgres' synchronous_commit, which prices every ledger write). */
export async function serviceVersions(databaseUrl: string, redisInfo: () => Promise<string>): Promise<Record<string, string>> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const v = await c.query<{ server_version: string }>('SHOW server_version');
    const s = await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
    const info = await redisInfo();
    return {
      postgres: v.rows[0]?.server_version ?? 'unknown',
      postgresSynchronousCommit: s.rows[0]?.synchronous_commit ?? 'unknown',
      redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    };
  } finally {
    await c.end();
  }
}

/**
 * Drops and recreates the bench database (the gateway child migrates and seeds it). Refuses any name without
 * "bench": this is a scratch database.
 */
export async function resetDatabase(databaseUrl: string, syncCommit: string | null = null): Promise<void> {
  const u = new URL(databaseUrl);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!name.includes('bench')) throw new Error(`refusing to drop "${name}": the bench database's name must contain "bench"`);
  u.pathname = '/postgres';
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    const q = `"${name.replaceAll('"', '""')}"`;
    await c.query(`DROP DATABASE IF EXISTS ${q} WITH (FORCE)`);
    if (syncCommit !== null) {
      // Diagnostic runs: a per-database default that every new session of the gateway picks up.
      if (!['on', 'off', 'local', 'remote_write', 'remote_apply'].includes(syncCommit)) throw new Error(`synchronous_commit: unknown value ${syncCommit}`);
      await c.query(`CREATE DATABASE ${q}`);
      await c.query(`ALTER DATABASE ${q} SET synchronous_commit = ${syncCommit}`);
    }
  } finally {
    await c.end();
  }
}
