import { LIB_LUA } from './lib.lua';

/**
 * generation: the generation of the reseed that wrote a tenant-month's state (admit returns the same value).
 * Read after the write-ahead INSERT: a different answer (or none: the state is gone) means a reseed ran since the
 * admission and may have missed the request's row, so the caller admits it again before calling the upstream.
 *
 * KEYS[1] budget hash   ARGV[1] clock offset ms (unused; every script takes it)
 *
 * Returns the generation, or '' when the month is missing.
 */
export const GENERATION_LUA = `${LIB_LUA}
return redis.call('HGET', KEYS[1], 'gen') or ''
`;
