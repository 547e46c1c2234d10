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
 * - Per API key the same: the key's settled sum, its live holds and its settled-marker amounts; its windows are
 *   seeded from its last minute when missing (whether or not it has a limit now: one set later starts from reality).
 * - A month written before per-key state (no 'kv' field) counts as missing: it is rebuilt the same way.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] requests/min window   KEYS[6] tokens/min window   KEYS[7] in-flight zset
 * KEYS[8] settled markers slot 0   KEYS[9] settled markers slot 1
 * KEYS[10 + 2i], KEYS[11 + 2i]: the requests/min and tokens/min windows of the i-th key window entry (i from 0)
 * ARGV[1] clock offset ms   ARGV[2] spent micro-USD (the month's settled ledger sum)   ARGV[3] month state TTL ms
 * ARGV[4] requests per minute, '' = none   ARGV[5] requests in the last minute, '' = unknown
 * ARGV[6] tokens per minute, '' = none     ARGV[7] tokens in the last minute, '' = unknown
 * ARGV[8] number of holds H
 * then H times: requestId, hold micro-USD, expiry ms, admitted-at ms, API key id ('' = none)
 * then K, and K times: API key id, its settled micro-USD this month
 * then W, and W times: API key id, its requests in the last minute, its tokens in the last minute
 * then pairs to the end: requestId, micro-USD of a recently settled row
 *
 * Returns 1 when it seeded, 0 when the state already existed.
 */
export const RESEED_LUA = `${LIB_LUA}
if redis.call('HGET', KEYS[1], 'kv') == KEY_STATE_VERSION then return 0 end

local now = now_ms()
-- Leftovers of a partially expired or evicted month (or one of the older layout) would otherwise mix with the
-- fresh state.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local key_spent, key_held = {}, {}
local function add(t, k, v) if k then t[k] = (t[k] or 0) + v end end

local spent = tonumber(ARGV[2])
local held = 0
local holds = tonumber(ARGV[8])
local at = 9
for i = 1, holds do
  local request_id = ARGV[at]
  local amount = tonumber(ARGV[at + 1])
  local expires_at = tonumber(ARGV[at + 2])
  local admitted_at = tonumber(ARGV[at + 3])
  local key_id = opt_str(ARGV[at + 4])
  at = at + 5
  local settled = marker_get(KEYS[8], KEYS[9], request_id, now)
  if settled then
    spent = spent + tonumber(settled)
    add(key_spent, key_id, tonumber(settled))
  elseif expires_at <= now then
    redis.call('ZADD', KEYS[4], int(now), request_id)
  else
    redis.call('ZADD', KEYS[2], int(expires_at), request_id)
    redis.call('HSET', KEYS[3], request_id, hold_value(amount, bucket_of(admitted_at), key_id))
    redis.call('ZADD', KEYS[7], int(expires_at), request_id)
    if redis.call('PTTL', KEYS[7]) < expires_at - now then redis.call('PEXPIRE', KEYS[7], int(expires_at - now)) end
    held = held + amount
    add(key_held, key_id, amount)
  end
end
local keys_n = tonumber(ARGV[at])
at = at + 1
for i = 1, keys_n do
  add(key_spent, ARGV[at], tonumber(ARGV[at + 1]))
  at = at + 2
end
local key_windows = {}
local windows_n = tonumber(ARGV[at])
at = at + 1
for i = 1, windows_n do
  key_windows[i] = {ARGV[at + 1], ARGV[at + 2]}
  at = at + 3
end
while at < #ARGV do
  if not marker_get(KEYS[8], KEYS[9], ARGV[at], now) then marker_put(KEYS[8], KEYS[9], ARGV[at], ARGV[at + 1], now) end
  at = at + 2
end

local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'spent', int(spent), 'held', int(held), 'gen', t[1] .. '.' .. t[2], 'kv', KEY_STATE_VERSION)
for k, v in pairs(key_spent) do redis.call('HSET', KEYS[1], key_field(k, 's'), int(v)) end
for k, v in pairs(key_held) do redis.call('HSET', KEYS[1], key_field(k, 'h'), int(v)) end
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3])

local function seed_window(key, limit, used)
  local n = opt_num(limit)
  local u = opt_num(used)
  if not n or not u or u == 0 or redis.call('EXISTS', key) == 1 then return end
  window_add(key, u, now, nil, nil)
end
seed_window(KEYS[5], ARGV[4], ARGV[5])
seed_window(KEYS[6], ARGV[6], ARGV[7])
for i, w in ipairs(key_windows) do
  seed_window(KEYS[8 + 2 * i], '0', w[1])
  seed_window(KEYS[9 + 2 * i], '0', w[2])
end
return 1
`;
