import { AppError } from '../errors';
import { luaScript, runScript, type LimitsRedis } from '../limits/run-script';

/**
 * Failed authentications (unknown or revoked keys) counted per client address in Redis, over a fixed window shared
 * by every instance. An address past the limit is refused with RATE_LIMITED before its key costs a Postgres lookup.
 */
export interface AuthFailures {
  /** RATE_LIMITED (limit AUTH_FAILURES, retryAfterMs) when `address` is over the limit. One Redis read. */
  check(address: string): Promise<void>;
  /** Counts one failure of `address`; RATE_LIMITED when this one takes it over the limit. */
  record(address: string): Promise<void>;
}

/** KEYS[1] the address' counter. Read-only: the count and its remaining ms. */
const PEEK = luaScript(
  'auth-failures-peek',
  `#!lua flags=no-writes
return { tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1]) }
`,
);

/** KEYS[1] the address' counter, ARGV[1] window ms. Counts one failure; the window starts at the first. */
const RECORD = luaScript(
  'auth-failures-record',
  `local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { n, redis.call('PTTL', KEYS[1]) }
`,
);

export function makeAuthFailures(redis: LimitsRedis, opts: { perWindow: number; windowMs?: number }): AuthFailures {
  const windowMs = opts.windowMs ?? 60_000;
  const key = (address: string) => `lg:authfail:${address}`;
  const refuse = (ttl: number) =>
    new AppError('RATE_LIMITED', `too many failed authentications from this address; retry in ${Math.max(1, ttl)} ms`, {
      retryAfterMs: Math.max(1, ttl),
      limit: 'AUTH_FAILURES',
    });
  return {
    async check(address) {
      const [n, ttl] = (await runScript(redis, PEEK, [key(address)], [])) as [number, number];
      if (n >= opts.perWindow) throw refuse(ttl);
    },
    async record(address) {
      const [n, ttl] = (await runScript(redis, RECORD, [key(address)], [String(windowMs)])) as [number, number];
      if (n > opts.perWindow) throw refuse(ttl);
    },
  };
}
