import { LIB_LUA } from './lib.lua';

/**
 * admit: one admission decision, all-or-nothing, for the tenant and (when given) the API key the request came with.
 * Checks, in order: the month is seeded (in this layout), the tenant's budget, the key's budget (both hard), the
 * tenant's requests in flight, then the rolling requests/min and tokens/min windows of the tenant and of the key;
 * applies the hold (to the tenant's and the key's held), the in-flight slot and every window take only if all pass.
 * A denial writes nothing except sweeping holds and in-flight slots that had already expired, and names whose limit
 * refused: 'TENANT' or 'KEY'.
 *
 * KEYS[1] budget hash {spent, held, gen, kv, k:<key>:s, k:<key>:h}   KEYS[5] requests/min window (bucket -> requests)
 * KEYS[2] holds zset (requestId -> expiry)                            KEYS[6] tokens/min window (bucket -> tokens)
 * KEYS[3] hold amounts hash                                           KEYS[7] in-flight zset (requestId -> expiry)
 * KEYS[4] swept tombstones (zset)
 * KEYS[8] the key's requests/min window, KEYS[9] the key's tokens/min window (only with an API key id)
 * ARGV[1] clock offset ms (0 outside tests)
 * ARGV[2] requestId
 * ARGV[3] requests per minute, '' = no limit
 * ARGV[4] tokens per minute, '' = no limit
 * ARGV[5] token estimate (prompt estimate + maxTokens)
 * ARGV[6] budget micro-USD, '' = no budget
 * ARGV[7] hold micro-USD
 * ARGV[8] hold TTL ms (also the in-flight slot's: a dead process's slot frees itself)
 * ARGV[9] month state TTL ms
 * ARGV[10] swept tombstone retention ms
 * ARGV[11] max concurrent requests, '' = no cap
 * ARGV[12] API key id, '' = none   ARGV[13] the key's budget micro-USD, '' = none
 * ARGV[14] the key's requests per minute, '' = none   ARGV[15] the key's tokens per minute, '' = none
 *
 * Returns {'OK', generation, requests used, requests reset ms, tokens used, tokens reset ms ('' = no limit)} (the
 * tenant's windows) | {'NEEDS_RESEED'} | {'BUDGET_EXCEEDED', remaining micro-USD, scope}
 *       | {'RATE_LIMITED', 'REQUESTS_PER_MINUTE' | 'TOKENS_PER_MINUTE' | 'CONCURRENT_REQUESTS', retry after ms,
 *          1 if it can never fit else 0, scope}
 * The generation names the reseed that wrote the month's state; the caller compares it after its write-ahead
 * INSERT (see generation.lua.ts).
 */
export const ADMIT_LUA = `${LIB_LUA}
-- Missing (or pre-key-layout) state must be reseeded before anything, rate included, is consumed.
if redis.call('HGET', KEYS[1], 'kv') ~= KEY_STATE_VERSION then return {'NEEDS_RESEED'} end

local request_id = ARGV[2]
local estimate = tonumber(ARGV[5])
local hold = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local max_inflight = opt_num(ARGV[11])
local key_id = opt_str(ARGV[12])
local now = now_ms()

sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[10]))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', int(now))

-- A repeated admission of one request replaces its hold and slot instead of stacking a second one.
local prior = hold_parse(redis.call('HGET', KEYS[3], request_id)) or 0

-- Budget first: it does not refill within the minute, so a rate wait would only postpone this answer. Spent can
-- exceed the budget (a provider reported more than the hold allowed for): then nothing more is admitted.
local function budget_refusal(budget, spent_field, held_field, scope)
  if not budget then return nil end
  local state = redis.call('HMGET', KEYS[1], spent_field, held_field)
  local used = (tonumber(state[1]) or 0) + (tonumber(state[2]) or 0) - prior
  if used < budget and used + hold <= budget then return nil end
  local remaining = budget - used
  if remaining < 0 then remaining = 0 end
  return {'BUDGET_EXCEEDED', int(remaining), scope}
end
local refusal = budget_refusal(opt_num(ARGV[6]), 'spent', 'held', 'TENANT')
if not refusal and key_id then refusal = budget_refusal(opt_num(ARGV[13]), key_field(key_id, 's'), key_field(key_id, 'h'), 'KEY') end
if refusal then return refusal end

if max_inflight then
  if max_inflight == 0 then return {'RATE_LIMITED', 'CONCURRENT_REQUESTS', 1000, 1, 'TENANT'} end
  local running = redis.call('ZCARD', KEYS[7])
  if redis.call('ZSCORE', KEYS[7], request_id) then running = running - 1 end
  if running >= max_inflight then return {'RATE_LIMITED', 'CONCURRENT_REQUESTS', 1000, 0, 'TENANT'} end
end

-- Every window that has a limit, requests before tokens, the tenant's before the key's (the order breaks ties).
local windows = {}
local function consider(name, scope, key, limit, cost)
  local n = opt_num(limit)
  if not n then return nil end
  local w = {name = name, scope = scope, key = key, cost = cost}
  w.ok, w.retry, w.never, w.stale, w.used, w.reset = window_check(key, n, cost, now)
  windows[#windows + 1] = w
  return w
end
local t_rpm = consider('REQUESTS_PER_MINUTE', 'TENANT', KEYS[5], ARGV[3], 1)
local t_tpm = consider('TOKENS_PER_MINUTE', 'TENANT', KEYS[6], ARGV[4], estimate)
if key_id then
  consider('REQUESTS_PER_MINUTE', 'KEY', KEYS[8], ARGV[14], 1)
  consider('TOKENS_PER_MINUTE', 'KEY', KEYS[9], ARGV[15], estimate)
end

-- A request that can never fit says so (tokens first); otherwise the longest wait is the one after which all admit.
for _, name in ipairs({'TOKENS_PER_MINUTE', 'REQUESTS_PER_MINUTE'}) do
  for _, w in ipairs(windows) do
    if w.name == name and w.never == 1 then return {'RATE_LIMITED', name, w.retry, 1, w.scope} end
  end
end
local wait = nil
for _, w in ipairs(windows) do
  if not w.ok and (not wait or w.retry > wait.retry) then wait = w end
end
if wait then return {'RATE_LIMITED', wait.name, wait.retry, 0, wait.scope} end

for _, w in ipairs(windows) do window_add(w.key, w.cost, now, w.stale, nil) end
redis.call('ZADD', KEYS[2], int(now + ttl), request_id)
redis.call('HSET', KEYS[3], request_id, hold_value(hold, bucket_of(now), key_id))
redis.call('HINCRBY', KEYS[1], 'held', int(hold - prior))
key_add(KEYS[1], key_id, 'h', hold - prior)
-- A fresh hold supersedes a tombstone of an earlier, expired one.
redis.call('ZREM', KEYS[4], request_id)
redis.call('ZADD', KEYS[7], int(now + ttl), request_id)
if redis.call('PTTL', KEYS[7]) < ttl then redis.call('PEXPIRE', KEYS[7], int(ttl)) end
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[9])
-- What the tenant's windows hold now, for clients' rate-limit headers ('' where there is no limit).
local function used_of(w) if w then return int(w.used) end return '' end
local function reset_of(w) if w then return int(w.reset) end return '' end
return {'OK', redis.call('HGET', KEYS[1], 'gen') or '', used_of(t_rpm), reset_of(t_rpm), used_of(t_tpm), reset_of(t_tpm)}
`;
