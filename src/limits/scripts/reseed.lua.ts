import { LIB_LUA } from './lib.lua';

/**
 * reseed: writes a tenant-month's state from Postgres, only if it is missing (SET semantics, never additive: a
 * second reseeder changes nothing). Holds whose settled marker exists were settled while the month was missing
 * (settle then writes only the marker), so their marker amount goes to spent instead of re-holding them: a
 * settlement landing between the Postgres read and this script is counted exactly once. Holds already expired get
 * a tombstone instead of a hold, as if swept, so their later settlement still adds its cost.
 * Rate buckets that are missing are seeded from last minute's counts, so a flushed Redis hands out no fresh burst
 * (as if all of last minute's usage happened now: conservative).
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] requests/min bucket   KEYS[6] tokens/min bucket
 * KEYS[6 + i] settled marker of the i-th hold
 * ARGV[1] spent micro-USD (the month's settled ledger sum)   ARGV[2] month state TTL ms
 * ARGV[3] requests per minute, '' = none   ARGV[4] requests in the last minute, '' = unknown
 * ARGV[5] tokens per minute, '' = none     ARGV[6] tokens in the last minute, '' = unknown
 * ARGV[7 + 3(i-1)], ARGV[8 + 3(i-1)], ARGV[9 + 3(i-1)]: requestId, hold micro-USD, expiry ms of the i-th hold
 *
 * Returns 1 when it seeded, 0 when the state already existed.
 */
export const RESEED_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end

local now = now_ms()
-- Leftovers of a partially expired or evicted month would otherwise mix with the fresh state.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])

local spent = tonumber(ARGV[1])
local held = 0
local holds = (#ARGV - 6) / 3
for i = 1, holds do
  local request_id = ARGV[4 + 3 * i]
  local amount = tonumber(ARGV[5 + 3 * i])
  local expires_at = tonumber(ARGV[6 + 3 * i])
  local settled = redis.call('GET', KEYS[6 + i])
  if settled then
    spent = spent + tonumber(settled)
  elseif expires_at <= now then
    redis.call('ZADD', KEYS[4], int(now), request_id)
  else
    redis.call('ZADD', KEYS[2], int(expires_at), request_id)
    redis.call('HSET', KEYS[3], request_id, int(amount))
    held = held + amount
  end
end

redis.call('HSET', KEYS[1], 'spent', int(spent), 'held', int(held))
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2])

local function seed_bucket(key, limit, used)
  local n = opt_num(limit)
  local u = opt_num(used)
  if not n or not u or n == 0 or redis.call('EXISTS', key) == 1 then return end
  local left = n - u
  if left < 0 then left = 0 end
  bucket_store(key, n, left * WINDOW_MS, now)
end
seed_bucket(KEYS[5], ARGV[3], ARGV[4])
seed_bucket(KEYS[6], ARGV[5], ARGV[6])
return 1
`;
