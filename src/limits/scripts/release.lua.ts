import { LIB_LUA } from './lib.lua';

/**
 * release: undoes an admission whose request never reached the upstream (its write-ahead INSERT failed, or its
 * re-admission after a reseed was refused): the hold and the in-flight slot go, and the window takes are given back
 * to the bucket they went to (if still in the window). No marker, nothing spent. A request with no hold left
 * (swept, or never held by this state) releases only its slot.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] requests/min window   KEYS[6] tokens/min window   KEYS[7] in-flight zset
 * KEYS[8] the key's requests/min window, KEYS[9] the key's tokens/min window (only with an API key id)
 * ARGV[1] clock offset ms   ARGV[2] requestId   ARGV[3] requests per minute, '' = none (nothing was taken)
 * ARGV[4] tokens per minute, '' = none   ARGV[5] token estimate
 * ARGV[6] the key's requests per minute, '' = none   ARGV[7] the key's tokens per minute, '' = none
 * The key's held share goes with the hold (the hold names its key).
 *
 * Returns 1 when a hold was released, 0 when there was none.
 */
export const RELEASE_LUA = `${LIB_LUA}
local request_id = ARGV[2]
local now = now_ms()
redis.call('ZREM', KEYS[7], request_id)
local hold, admitted_idx, key_id = hold_parse(redis.call('HGET', KEYS[3], request_id))
if not hold then return 0 end
redis.call('ZREM', KEYS[2], request_id)
redis.call('HDEL', KEYS[3], request_id)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'held', int(-hold))
  key_add(KEYS[1], key_id, 'h', -hold)
end
if ARGV[3] ~= '' then window_correct(KEYS[5], -1, admitted_idx, now) end
if ARGV[4] ~= '' then window_correct(KEYS[6], -tonumber(ARGV[5]), admitted_idx, now) end
if KEYS[8] and opt_str(ARGV[6]) then window_correct(KEYS[8], -1, admitted_idx, now) end
if KEYS[9] and opt_str(ARGV[7]) then window_correct(KEYS[9], -tonumber(ARGV[5]), admitted_idx, now) end
return 1
`;
