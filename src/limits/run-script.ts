import { createHash } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * All the limits need from Redis: running a script by its SHA and, when the server has not cached it (restart,
 * SCRIPT FLUSH, failover), sending its text once. A `Redis` from ioredis fits; so does anything with these two.
 */
export type LimitsRedis = Pick<Redis, 'evalsha' | 'eval'>;

export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

export function luaScript(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

const isNoScript = (e: unknown): boolean => e instanceof Error && e.message.startsWith('NOSCRIPT');

/**
 * EVALSHA, falling back to EVAL on NOSCRIPT (which also caches the script for the next EVALSHA). Any other error
 * (connection lost, script error) rejects as is: the caller fails closed.
 */
export async function runScript(redis: LimitsRedis, script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (e) {
    if (!isNoScript(e)) throw e;
    return redis.eval(script.source, keys.length, ...keys, ...args);
  }
}
