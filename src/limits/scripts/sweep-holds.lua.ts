import { LIB_LUA } from './lib.lua';

/**
 * sweep-holds: releases the tenant-month's expired holds (admit, extend-hold and budget-state do the same first).
 * A missing month is left alone: its reseed rebuilds the holds from Postgres.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * ARGV[1] clock offset ms   ARGV[2] swept tombstone retention ms
 *
 * Returns how many holds were swept.
 */
export const SWEEP_HOLDS_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms(), tonumber(ARGV[2]))
`;
