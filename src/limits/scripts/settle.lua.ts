import { LIB_LUA } from './lib.lua';

/**
 * settle: applies a request's actual cost once, guarded by its settled marker.
 *
 * With the month seeded, exactly one of:
 * - its hold exists: release it (held -= hold) and add the actual cost to spent;
 * - its hold was swept unsettled (a tombstone exists): add the actual cost to spent (nothing left to release);
 * - neither: the reseed that wrote this month read the request as settled in Postgres, so spent already counts
 *   it; adding it again would count it twice. Only the marker is written.
 * With the month missing nothing is incremented: a reseed reads Postgres afterwards (the row is settled there, or
 * it is a hold whose marker the reseed finds and counts). The marker is the only write.
 *
 * The tokens/min bucket is corrected by (actual - estimate) tokens, once: refunded when the estimate was high,
 * charged (possibly into debt down to minus one minute's worth) when it was low. This keeps TPM soft.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] settled marker of this request      KEYS[6] tokens/min bucket
 * ARGV[1] requestId   ARGV[2] actual micro-USD   ARGV[3] actual - estimated tokens
 * ARGV[4] marker TTL ms   ARGV[5] month state TTL ms
 *
 * Returns 1 when this call applied the settlement, 0 when an earlier call had.
 */
export const SETTLE_LUA = `${LIB_LUA}
if not redis.call('SET', KEYS[5], ARGV[2], 'NX', 'PX', ARGV[4]) then return 0 end

local request_id = ARGV[1]
local actual = tonumber(ARGV[2])
local token_delta = tonumber(ARGV[3])

if token_delta ~= 0 then
  local s = redis.call('HMGET', KEYS[6], 'n')
  local n = tonumber(s[1])
  if n and n > 0 then
    local now = now_ms()
    local cap = n * WINDOW_MS
    local lvl = bucket_level(KEYS[6], n, now) - token_delta * WINDOW_MS
    if lvl > cap then lvl = cap end
    if lvl < -cap then lvl = -cap end
    bucket_store(KEYS[6], n, lvl, now)
  end
end

if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end

local hold = redis.call('HGET', KEYS[3], request_id)
if hold then
  redis.call('ZREM', KEYS[2], request_id)
  redis.call('HDEL', KEYS[3], request_id)
  redis.call('HINCRBY', KEYS[1], 'held', int(-tonumber(hold)))
  redis.call('HINCRBY', KEYS[1], 'spent', int(actual))
elseif redis.call('ZREM', KEYS[4], request_id) == 1 then
  redis.call('HINCRBY', KEYS[1], 'spent', int(actual))
end
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[5])
return 1
`;
