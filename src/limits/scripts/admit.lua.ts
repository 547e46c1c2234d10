import { LIB_LUA } from './lib.lua';

/**
 * admit: one admission decision, all-or-nothing. Checks, in order: the month is seeded, the budget (hard), the
 * tenant's requests in flight, then the rolling requests/min and tokens/min windows; applies the hold, the
 * in-flight slot and both window takes only if all pass. A denial writes nothing except sweeping holds and
 * in-flight slots that had already expired.
 *
 * KEYS[1] budget hash {spent, held, gen}   KEYS[5] requests/min window (bucket -> requests)
 * KEYS[2] holds zset (requestId -> expiry)  KEYS[6] tokens/min window (bucket -> tokens)
 * KEYS[3] hold amounts hash                 KEYS[7] in-flight zset (requestId -> expiry)
 * KEYS[4] swept tombstones (zset)
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
 *
 * Returns {'OK', generation, requests used, requests reset ms, tokens used, tokens reset ms ('' = no limit)} | {'NEEDS_RESEED'} | {'BUDGET_EXCEEDED', remaining micro-USD}
 *       | {'RATE_LIMITED', 'REQUESTS_PER_MINUTE' | 'TOKENS_PER_MINUTE' | 'CONCURRENT_REQUESTS', retry after ms,
 *          1 if it can never fit else 0}
 * The generation names the reseed that wrote the month's state; the caller compares it after its write-ahead
 * INSERT (see generation.lua.ts).
 */
export const ADMIT_LUA = `${LIB_LUA}
-- Missing state must be reseeded before anything, rate included, is consumed.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NEEDS_RESEED'} end

local request_id = ARGV[2]
local rpm = opt_num(ARGV[3])
local tpm = opt_num(ARGV[4])
local estimate = tonumber(ARGV[5])
local budget = opt_num(ARGV[6])
local hold = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local max_inflight = opt_num(ARGV[11])
local now = now_ms()

sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[10]))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', int(now))

local state = redis.call('HMGET', KEYS[1], 'spent', 'held', 'gen')
local spent = tonumber(state[1]) or 0
local held = tonumber(state[2]) or 0
-- A repeated admission of one request replaces its hold and slot instead of stacking a second one.
local prior = hold_parse(redis.call('HGET', KEYS[3], request_id)) or 0

-- Budget first: it does not refill within the minute, so a rate wait would only postpone this answer. Spent can
-- exceed the budget (a provider reported more than the hold allowed for): then nothing more is admitted.
if budget and (spent + held - prior >= budget or spent + held - prior + hold > budget) then
  local remaining = budget - spent - held + prior
  if remaining < 0 then remaining = 0 end
  return {'BUDGET_EXCEEDED', int(remaining)}
end

if max_inflight then
  if max_inflight == 0 then return {'RATE_LIMITED', 'CONCURRENT_REQUESTS', 1000, 1} end
  local running = redis.call('ZCARD', KEYS[7])
  if redis.call('ZSCORE', KEYS[7], request_id) then running = running - 1 end
  if running >= max_inflight then return {'RATE_LIMITED', 'CONCURRENT_REQUESTS', 1000, 0} end
end

local rpm_ok, rpm_retry, rpm_never, rpm_stale, rpm_used, rpm_reset = true, 0, 0, nil, nil, nil
if rpm then rpm_ok, rpm_retry, rpm_never, rpm_stale, rpm_used, rpm_reset = window_check(KEYS[5], rpm, 1, now) end
local tpm_ok, tpm_retry, tpm_never, tpm_stale, tpm_used, tpm_reset = true, 0, 0, nil, nil, nil
if tpm then tpm_ok, tpm_retry, tpm_never, tpm_stale, tpm_used, tpm_reset = window_check(KEYS[6], tpm, estimate, now) end

-- A request that can never fit says so; otherwise the longer wait is the one after which both admit.
if tpm_never == 1 then return {'RATE_LIMITED', 'TOKENS_PER_MINUTE', tpm_retry, 1} end
if rpm_never == 1 then return {'RATE_LIMITED', 'REQUESTS_PER_MINUTE', rpm_retry, 1} end
if not rpm_ok or not tpm_ok then
  if tpm_retry > rpm_retry then return {'RATE_LIMITED', 'TOKENS_PER_MINUTE', tpm_retry, 0} end
  return {'RATE_LIMITED', 'REQUESTS_PER_MINUTE', rpm_retry, 0}
end

if rpm then window_add(KEYS[5], 1, now, rpm_stale, nil) end
if tpm then window_add(KEYS[6], estimate, now, tpm_stale, nil) end
redis.call('ZADD', KEYS[2], int(now + ttl), request_id)
redis.call('HSET', KEYS[3], request_id, int(hold) .. ':' .. int(bucket_of(now)))
redis.call('HINCRBY', KEYS[1], 'held', int(hold - prior))
-- A fresh hold supersedes a tombstone of an earlier, expired one.
redis.call('ZREM', KEYS[4], request_id)
redis.call('ZADD', KEYS[7], int(now + ttl), request_id)
if redis.call('PTTL', KEYS[7]) < ttl then redis.call('PEXPIRE', KEYS[7], int(ttl)) end
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[9])
-- What the windows hold now, for clients' rate-limit headers ('' where there is no limit).
local function opt_int(v) if v then return int(v) end return '' end
return {'OK', state[3] or '', opt_int(rpm_used), opt_int(rpm_reset), opt_int(tpm_used), opt_int(tpm_reset)}
`;
