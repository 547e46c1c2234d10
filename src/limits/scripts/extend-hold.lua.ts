import { LIB_LUA } from './lib.lua';

/**
 * extend-hold: grows one request's hold by extra micro-USD if spent + held + extra <= budget, and pushes its
 * expiry to at least now + TTL. A hold that was swept meanwhile is recreated with the extra amount alone (the
 * swept part was released; the tombstone goes, since the request is held again). A settled request is refused:
 * a hold nobody settles would only block budget until it expired.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] settled marker of this request
 * ARGV[1] requestId   ARGV[2] extra micro-USD   ARGV[3] budget micro-USD, '' = no budget
 * ARGV[4] hold TTL ms   ARGV[5] month state TTL ms   ARGV[6] swept tombstone retention ms
 *
 * Returns {'OK', remaining micro-USD or ''} | {'BUDGET_EXCEEDED', remaining} | {'NEEDS_RESEED'} | {'SETTLED'}
 */
export const EXTEND_HOLD_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NEEDS_RESEED'} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {'SETTLED'} end

local request_id = ARGV[1]
local extra = tonumber(ARGV[2])
local budget = opt_num(ARGV[3])
local now = now_ms()

sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[6]))

local state = redis.call('HMGET', KEYS[1], 'spent', 'held')
local spent = tonumber(state[1]) or 0
local held = tonumber(state[2]) or 0

if budget and spent + held + extra > budget then
  local remaining = budget - spent - held
  if remaining < 0 then remaining = 0 end
  return {'BUDGET_EXCEEDED', int(remaining)}
end

local current = tonumber(redis.call('HGET', KEYS[3], request_id)) or 0
redis.call('HSET', KEYS[3], request_id, int(current + extra))
redis.call('ZADD', KEYS[2], 'GT', int(now + tonumber(ARGV[4])), request_id)
redis.call('HINCRBY', KEYS[1], 'held', int(extra))
redis.call('ZREM', KEYS[4], request_id)
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[5])
if budget then return {'OK', int(budget - spent - held - extra)} end
return {'OK', ''}
`;
