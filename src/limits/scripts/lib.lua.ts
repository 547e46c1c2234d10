/**
 * Lua helpers shared by the limit scripts, prepended to each script's text when the module loads (the SHA covers
 * the composed text, so what runs is exactly what is reviewed here plus the script body).
 */
export const LIB_LUA = `
-- Rate windows are one minute. Buckets count in units of (token x WINDOW_MS), so a limit of n per minute refills
-- exactly n units per millisecond: integer math only, no float drift between instances.
local WINDOW_MS = 60000

-- Integers go back to Redis as '%d' strings: a Lua number argument would be formatted as a double.
local function int(n)
  return string.format('%d', n)
end

-- Redis TIME in ms: every gateway instance reads the same clock, never its own.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ceil(a / b) for integers a >= 0, b > 0; corrected in integers in case the float quotient rounded.
local function ceil_div(a, b)
  local q = math.floor(a / b)
  while q * b < a do q = q + 1 end
  while q > 0 and (q - 1) * b >= a do q = q - 1 end
  return q
end

-- The optional arguments use '' for "none".
local function opt_num(s)
  if s == nil or s == '' then return nil end
  return tonumber(s)
end

-- Token bucket level at now: a missing key is a full bucket (keys expire once they would be full again).
local function bucket_level(key, n, now)
  local cap = n * WINDOW_MS
  local s = redis.call('HMGET', key, 'lvl', 'ts')
  if not s[1] then return cap end
  local elapsed = now - tonumber(s[2])
  if elapsed < 0 then elapsed = 0 end
  local lvl = tonumber(s[1]) + elapsed * n
  if lvl > cap then lvl = cap end
  return lvl
end

local function bucket_store(key, n, lvl, now)
  redis.call('HSET', key, 'lvl', int(lvl), 'ts', int(now), 'n', int(n))
  local full_in = 0
  if n > 0 and lvl < n * WINDOW_MS then full_in = ceil_div(n * WINDOW_MS - lvl, n) end
  redis.call('PEXPIRE', key, int(full_in + 1000))
end

-- Decides one rate limit without writing. Returns (level after taking cost, 0, 0) when it fits,
-- (nil, retry_after_ms, 0) when it fits later, (nil, WINDOW_MS, 1) when it never can (cost above the limit).
local function rate_take(key, n, cost, now)
  if n == 0 or cost > n then return nil, WINDOW_MS, 1 end
  local lvl = bucket_level(key, n, now)
  local need = cost * WINDOW_MS
  if lvl < need then return nil, ceil_div(need - lvl, n), 0 end
  return lvl - need, 0, 0
end

-- Removes the holds of a tenant-month that expired at or before now, releasing them from 'held' and leaving a
-- tombstone in the swept set (a settlement arriving later must still add its cost once). Tombstones older than
-- retention_ms are dropped. Batches keep unpack() far below Lua's stack limit. Returns how many were swept.
local function sweep(budget_key, holds_key, amounts_key, swept_key, now, retention_ms)
  local count, released = 0, 0
  while true do
    local ids = redis.call('ZRANGEBYSCORE', holds_key, '-inf', int(now), 'LIMIT', 0, 500)
    if #ids == 0 then break end
    local amounts = redis.call('HMGET', amounts_key, unpack(ids))
    local tombs = {}
    for i, id in ipairs(ids) do
      released = released + (tonumber(amounts[i]) or 0)
      tombs[#tombs + 1] = int(now)
      tombs[#tombs + 1] = id
    end
    redis.call('ZADD', swept_key, unpack(tombs))
    redis.call('ZREM', holds_key, unpack(ids))
    redis.call('HDEL', amounts_key, unpack(ids))
    count = count + #ids
    if #ids < 500 then break end
  end
  if released ~= 0 then redis.call('HINCRBY', budget_key, 'held', int(-released)) end
  redis.call('ZREMRANGEBYSCORE', swept_key, '-inf', '(' .. int(now - retention_ms))
  return count
end

-- Month state lives ~40 days after its last write, so old months disappear by themselves.
local function touch_month(budget_key, holds_key, amounts_key, swept_key, ttl_ms)
  redis.call('PEXPIRE', budget_key, ttl_ms)
  redis.call('PEXPIRE', holds_key, ttl_ms)
  redis.call('PEXPIRE', amounts_key, ttl_ms)
  redis.call('PEXPIRE', swept_key, ttl_ms)
end
`;
