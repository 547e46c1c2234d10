import { LIB_LUA } from './lib.lua';

/**
 * budget-state: the month's spent and held after sweeping expired holds, i.e. the numbers the next admission
 * would use. Writes nothing when the month is missing.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * ARGV[1] clock offset ms   ARGV[2] swept tombstone retention ms
 *
 * Returns {spent, held} as decimal strings, or nil when the month is missing (the caller reseeds).
 */
export const BUDGET_STATE_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms(), tonumber(ARGV[2]))
local state = redis.call('HMGET', KEYS[1], 'spent', 'held')
return {state[1] or '0', state[2] or '0'}
`;
