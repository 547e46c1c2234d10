import { LIB_LUA } from './lib.lua';

/**
 * reseed: writes a tenant-month's state from Postgres, only if it is missing (SET semantics, never additive: a
 * second reseeder changes nothing), under a new generation (admit returns it; a request whose generation changed
 * between its admission and its write-ahead INSERT is re-admitted, since this reseed may have missed its row).
 *
 * - Holds (HELD rows) whose settled marker exists were settled while the month was missing (settle then writes only
 *   the marker), so their marker amount goes to spent instead of re-holding them: a settlement landing between the
 *   Postgres read and this script is counted exactly once. Holds already expired get a tombstone, as if swept, so
 *   their later settlement still adds its cost. Live holds get their in-flight slot back.
 * - Rows settled recently (within the marker window) are counted in spent by the ledger sum; each gets a settled
 *   marker, so a late or retried settlement of it applies nothing.
 * - Rolling windows that are missing are seeded from last minute's counts, all in the current bucket, so a flushed
 *   Redis hands out no fresh burst (conservative: as if all of last minute's usage happened now).
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] requests/min window   KEYS[6] tokens/min window   KEYS[7] in-flight zset
 * KEYS[8] settled markers slot 0   KEYS[9] settled markers slot 1
 * ARGV[1] clock offset ms   ARGV[2] spent micro-USD (the month's settled ledger sum)   ARGV[3] month state TTL ms
 * ARGV[4] requests per minute, '' = none   ARGV[5] requests in the last minute, '' = unknown
 * ARGV[6] tokens per minute, '' = none     ARGV[7] tokens in the last minute, '' = unknown
 * ARGV[8] number of holds H
 * then H times: requestId, hold micro-USD, expiry ms, admitted-at ms
 * then pairs to the end: requestId, micro-USD of a recently settled row
 *
 * Returns 1 when it seeded, 0 when the state already existed.
 */
export const RESEED_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end

local now = now_ms()
-- Leftovers of a partially expired or evicted month would otherwise mix with the fresh state.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])

local spent = tonumber(ARGV[2])
local held = 0
local holds = tonumber(ARGV[8])
local at = 9
for i = 1, holds do
  local request_id = ARGV[at]
  local amount = tonumber(ARGV[at + 1])
  local expires_at = tonumber(ARGV[at + 2])
  local admitted_at = tonumber(ARGV[at + 3])
  at = at + 4
  local settled = marker_get(KEYS[8], KEYS[9], request_id, now)
  if settled then
    spent = spent + tonumber(settled)
  elseif expires_at <= now then
    redis.call('ZADD', KEYS[4], int(now), request_id)
  else
    redis.call('ZADD', KEYS[2], int(expires_at), request_id)
    redis.call('HSET', KEYS[3], request_id, int(amount) .. ':' .. int(bucket_of(admitted_at)))
    redis.call('ZADD', KEYS[7], int(expires_at), request_id)
    if redis.call('PTTL', KEYS[7]) < expires_at - now then redis.call('PEXPIRE', KEYS[7], int(expires_at - now)) end
    held = held + amount
  end
end
while at < #ARGV do
  if not marker_get(KEYS[8], KEYS[9], ARGV[at], now) then marker_put(KEYS[8], KEYS[9], ARGV[at], ARGV[at + 1], now) end
  at = at + 2
end

local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'spent', int(spent), 'held', int(held), 'gen', t[1] .. '.' .. t[2])
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3])

local function seed_window(key, limit, used)
  local n = opt_num(limit)
  local u = opt_num(used)
  if not n or not u or u == 0 or redis.call('EXISTS', key) == 1 then return end
  window_add(key, u, now, nil, nil)
end
seed_window(KEYS[5], ARGV[4], ARGV[5])
seed_window(KEYS[6], ARGV[6], ARGV[7])
return 1
`;
