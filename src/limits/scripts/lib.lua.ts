/**
 * Lua helpers shared by the limit scripts, prepended to each script's text when the module loads (the SHA covers
 * the composed text, so what runs is exactly what is reviewed here plus the script body).
 *
 * Every script takes ARGV[1] = a clock offset in ms added to Redis TIME: 0 in production, moved forward by tests
 * to see a rolling window or an hour of markers pass without waiting for it.
 */
export const LIB_LUA = `
-- Rolling windows: one-second sub-buckets. A window read at time now sums the current bucket and the
-- WINDOW_BUCKETS before it, i.e. at least the last 60 s (up to 61 s): conservative, never admits more than the limit
-- in any 60 s. A bucket idx leaves the window at (idx + WINDOW_BUCKETS + 1) * BUCKET_MS.
local BUCKET_MS = 1000
local WINDOW_BUCKETS = 60
local WINDOW_MS = 60000
-- Settled markers rotate through two hash slots by the hour (see marker_put).
local HOUR_MS = 3600000

-- Integers go back to Redis as '%d' strings: a Lua number argument would be formatted as a double.
local function int(n)
  return string.format('%d', n)
end

local CLOCK_OFFSET_MS = tonumber(ARGV[1]) or 0

-- Redis TIME in ms: every gateway instance reads the same clock, never its own.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + CLOCK_OFFSET_MS
end

-- The optional arguments use '' for "none".
local function opt_num(s)
  if s == nil or s == '' then return nil end
  return tonumber(s)
end

-- A hold is stored as 'amount:admittedBucket:apiKeyId' (the bucket lets settlement correct the tokens window where
-- the reservation was made; the key id says whose key-level 'held' it is in). Bucket and key id may be empty or
-- absent (holds written before per-key limits: 'amount:bucket').
local function hold_parse(v)
  if not v then return nil, nil, nil end
  local amount, idx, key_id = string.match(v, '^(%d+):?(%d*):?(.*)$')
  if key_id == '' then key_id = nil end
  return tonumber(amount), tonumber(idx), key_id
end

local function hold_value(amount, idx, key_id)
  local v = int(amount)
  if idx or key_id then v = v .. ':' .. (idx and int(idx) or '') end
  if key_id then v = v .. ':' .. key_id end
  return v
end

-- Per-key state lives in the tenant-month's budget hash (one slot; read with the tenant's in one HMGET):
-- 'k:<apiKeyId>:s' spent and 'k:<apiKeyId>:h' held, micro-USD. 'kv' names this layout: a month written before it
-- (no 'kv') is rebuilt from the ledger like a missing one, so no key's spend is ever counted from zero mid-month.
local KEY_STATE_VERSION = '1'
local function key_field(key_id, what)
  return 'k:' .. key_id .. ':' .. what
end

local function key_add(budget_key, key_id, what, amount)
  if key_id and amount ~= 0 then redis.call('HINCRBY', budget_key, key_field(key_id, what), int(amount)) end
end

-- The optional api key id argument: '' = none.
local function opt_str(s)
  if s == nil or s == '' then return nil end
  return s
end

local function bucket_of(ms)
  return math.floor(ms / BUCKET_MS)
end

-- Reads a window hash (bucket idx -> amount). Returns the total inside the window, its entries sorted oldest
-- first, and the fields that fell out (the caller deletes them when it writes anyway).
local function window_read(key, now)
  local oldest = bucket_of(now) - WINDOW_BUCKETS
  local flat = redis.call('HGETALL', key)
  local entries, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local idx = tonumber(flat[i])
    if idx < oldest then
      stale[#stale + 1] = flat[i]
    else
      local v = tonumber(flat[i + 1])
      entries[#entries + 1] = {idx, v}
      total = total + v
    end
  end
  table.sort(entries, function(x, y) return x[1] < y[1] end)
  return total, entries, stale
end

-- Decides one rolling limit without writing. The window must stay below the limit and take the cost whole:
-- usage above a reservation (settled later) counts too, so a window at or over its limit admits nothing.
-- Returns (true, 0, 0, stale, used, reset_ms) when it fits (used: the window's total with this cost taken; reset_ms:
-- when its oldest bucket leaves the window), (false, retry_after_ms, 0) when it fits once enough leaves the window,
-- (false, WINDOW_MS, 1) when it never can (limit 0 or cost above the limit).
local function window_check(key, n, cost, now)
  if n == 0 or cost > n then return false, WINDOW_MS, 1 end
  local total, entries, stale = window_read(key, now)
  if total < n and total + cost <= n then
    local oldest = bucket_of(now)
    if #entries > 0 then oldest = entries[1][1] end
    return true, 0, 0, stale, total + cost, (oldest + WINDOW_BUCKETS + 1) * BUCKET_MS - now
  end
  local left = total
  for _, e in ipairs(entries) do
    left = left - e[2]
    if left < n and left + cost <= n then
      return false, (e[1] + WINDOW_BUCKETS + 1) * BUCKET_MS - now, 0
    end
  end
  return false, WINDOW_MS, 0
end

-- Adds amount to the current bucket (an idx, when given: the bucket a reservation was made in), drops fields
-- that left the window, and keeps the key no longer than the window needs it.
local function window_add(key, amount, now, stale, idx)
  redis.call('HINCRBY', key, int(idx or bucket_of(now)), int(amount))
  if stale and #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('PEXPIRE', key, int((WINDOW_BUCKETS + 2) * BUCKET_MS))
end

-- Corrects a request's tokens from its reservation to its actual count, once, at settlement. A refund comes off
-- the bucket the reservation went to (while it is still in the window, and never below zero); usage above the
-- reservation is added to the current bucket, so it counts against admissions for a whole window from now.
local function window_correct(key, delta, admitted_idx, now)
  if delta > 0 then
    window_add(key, delta, now, nil, nil)
  elseif delta < 0 and admitted_idx and admitted_idx >= bucket_of(now) - WINDOW_BUCKETS then
    local f = int(admitted_idx)
    local v = tonumber(redis.call('HGET', key, f))
    if v then
      local left = v + delta
      if left < 0 then left = 0 end
      redis.call('HSET', key, f, int(left))
    end
  end
end

-- Settled markers: two hashes per tenant (slot = hour % 2), each holding requestId -> micro-USD of the hour named
-- by its '#hour' field. A marker written in hour h is found through the end of hour h + 1 (>= 1 h), then its slot
-- is reused for hour h + 2 and the whole hour goes at once (UNLINK, freed off the main thread). Memory is
-- therefore bounded by two hours of settlements, never by traffic history.
local function marker_get(s0, s1, request_id, now)
  local h = math.floor(now / HOUR_MS)
  for _, k in ipairs({s0, s1}) do
    local r = redis.call('HMGET', k, '#hour', request_id)
    local kh = tonumber(r[1])
    if r[2] and kh and (kh == h or kh == h - 1) then return r[2] end
  end
  return nil
end

local function marker_put(s0, s1, request_id, amount, now)
  local h = math.floor(now / HOUR_MS)
  local k = s0
  if h % 2 == 1 then k = s1 end
  if tonumber(redis.call('HGET', k, '#hour')) ~= h then
    redis.call('UNLINK', k)
    redis.call('HSET', k, '#hour', int(h))
    -- Expires when its hour can no longer be read (end of hour h + 1), even if no later settlement rotates it.
    redis.call('PEXPIRE', k, int((h + 2) * HOUR_MS - now + 1000))
  end
  redis.call('HSET', k, request_id, amount)
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
      local amount, _, key_id = hold_parse(amounts[i])
      released = released + (amount or 0)
      key_add(budget_key, key_id, 'h', -(amount or 0))
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
