import { LIB_LUA } from './lib.lua';

/**
 * admit: one admission decision, all-or-nothing. Checks, in order: the month is seeded, the budget (hard), then
 * requests/min and tokens/min; applies the hold and both rate takes only if all pass. A denial writes nothing
 * except sweeping holds that had already expired.
 *
 * KEYS[1] budget hash {spent, held}        KEYS[4] swept tombstones (zset)
 * KEYS[2] holds zset (requestId -> expiry)  KEYS[5] requests/min bucket
 * KEYS[3] hold amounts hash                 KEYS[6] tokens/min bucket
 * ARGV[1] requestId
 * ARGV[2] requests per minute, '' = no limit
 * ARGV[3] tokens per minute, '' = no limit
 * ARGV[4] token estimate (prompt estimate + maxTokens)
 * ARGV[5] budget micro-USD, '' = no budget
 * ARGV[6] hold micro-USD
 * ARGV[7] hold TTL ms
 * ARGV[8] month state TTL ms
 * ARGV[9] swept tombstone retention ms
 *
 * Returns {'OK'} | {'NEEDS_RESEED'} | {'BUDGET_EXCEEDED', remaining micro-USD}
 *       | {'RATE_LIMITED', 'REQUESTS_PER_MINUTE' | 'TOKENS_PER_MINUTE', retry after ms, 1 if it can never fit else 0}
 */
export const ADMIT_LUA = `${LIB_LUA}
-- Missing state must be reseeded before anything, rate included, is consumed.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NEEDS_RESEED'} end

local request_id = ARGV[1]
local rpm = opt_num(ARGV[2])
local tpm = opt_num(ARGV[3])
local estimate = tonumber(ARGV[4])
local budget = opt_num(ARGV[5])
local hold = tonumber(ARGV[6])
local now = now_ms()

sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[9]))

local state = redis.call('HMGET', KEYS[1], 'spent', 'held')
local spent = tonumber(state[1]) or 0
local held = tonumber(state[2]) or 0
-- A repeated admission of one request replaces its hold instead of stacking a second one.
local prior = tonumber(redis.call('HGET', KEYS[3], request_id)) or 0

-- Budget first: it does not refill within the minute, so a rate wait would only postpone this answer.
if budget and spent + held - prior + hold > budget then
  local remaining = budget - spent - held
  if remaining < 0 then remaining = 0 end
  return {'BUDGET_EXCEEDED', int(remaining)}
end

local rpm_lvl, rpm_retry, rpm_never = nil, 0, 0
if rpm then rpm_lvl, rpm_retry, rpm_never = rate_take(KEYS[5], rpm, 1, now) end
local tpm_lvl, tpm_retry, tpm_never = nil, 0, 0
if tpm then tpm_lvl, tpm_retry, tpm_never = rate_take(KEYS[6], tpm, estimate, now) end

-- A request that can never fit says so; otherwise the longer wait is the one after which both admit.
if tpm_never == 1 then return {'RATE_LIMITED', 'TOKENS_PER_MINUTE', tpm_retry, 1} end
if rpm_never == 1 then return {'RATE_LIMITED', 'REQUESTS_PER_MINUTE', rpm_retry, 1} end
if (rpm and not rpm_lvl) or (tpm and not tpm_lvl) then
  if tpm_retry > rpm_retry then return {'RATE_LIMITED', 'TOKENS_PER_MINUTE', tpm_retry, 0} end
  return {'RATE_LIMITED', 'REQUESTS_PER_MINUTE', rpm_retry, 0}
end

if rpm then bucket_store(KEYS[5], rpm, rpm_lvl, now) end
if tpm then bucket_store(KEYS[6], tpm, tpm_lvl, now) end
redis.call('ZADD', KEYS[2], int(now + tonumber(ARGV[7])), request_id)
redis.call('HSET', KEYS[3], request_id, int(hold))
redis.call('HINCRBY', KEYS[1], 'held', int(hold - prior))
-- A fresh hold supersedes a tombstone of an earlier, expired one.
redis.call('ZREM', KEYS[4], request_id)
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[8])
return {'OK'}
`;
