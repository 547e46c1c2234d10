import { LIB_LUA } from './lib.lua';

/**
 * extend-hold: grows one request's hold by extra micro-USD if spent + held + extra <= budget, and pushes its
 * expiry (and its in-flight slot's) to at least now + TTL. A hold that was swept meanwhile is recreated with the
 * extra amount alone (the swept part was released; the tombstone goes, since the request is held again). A
 * settled request is refused: a hold nobody settles would only block budget until it expired.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] settled markers slot 0   KEYS[6] settled markers slot 1   KEYS[7] in-flight zset
 * ARGV[1] clock offset ms   ARGV[2] requestId   ARGV[3] extra micro-USD   ARGV[4] budget micro-USD, '' = no budget
 * ARGV[5] hold TTL ms   ARGV[6] month state TTL ms   ARGV[7] swept tombstone retention ms
 * ARGV[8] API key id, '' = none   ARGV[9] the key's budget micro-USD, '' = none (checked like the tenant's)
 *
 * Returns {'OK', remaining micro-USD of the tenant or ''} | {'BUDGET_EXCEEDED', remaining, 'TENANT' | 'KEY'}
 *       | {'NEEDS_RESEED'} | {'SETTLED'}
 */
export const EXTEND_HOLD_LUA = `${LIB_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NEEDS_RESEED'} end
local request_id = ARGV[2]
local now = now_ms()
if marker_get(KEYS[5], KEYS[6], request_id, now) then return {'SETTLED'} end

local extra = tonumber(ARGV[3])
local budget = opt_num(ARGV[4])
local ttl = tonumber(ARGV[5])

sweep(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[7]))

local state = redis.call('HMGET', KEYS[1], 'spent', 'held')
local spent = tonumber(state[1]) or 0
local held = tonumber(state[2]) or 0

if budget and spent + held + extra > budget then
  local remaining = budget - spent - held
  if remaining < 0 then remaining = 0 end
  return {'BUDGET_EXCEEDED', int(remaining), 'TENANT'}
end

local key_id = opt_str(ARGV[8])
local key_budget = opt_num(ARGV[9])
if key_id and key_budget then
  local k = redis.call('HMGET', KEYS[1], key_field(key_id, 's'), key_field(key_id, 'h'))
  local remaining = key_budget - (tonumber(k[1]) or 0) - (tonumber(k[2]) or 0)
  if extra > remaining then
    if remaining < 0 then remaining = 0 end
    return {'BUDGET_EXCEEDED', int(remaining), 'KEY'}
  end
end

local current, admitted_idx = hold_parse(redis.call('HGET', KEYS[3], request_id))
redis.call('HSET', KEYS[3], request_id, hold_value((current or 0) + extra, admitted_idx, key_id))
redis.call('ZADD', KEYS[2], 'GT', int(now + ttl), request_id)
redis.call('HINCRBY', KEYS[1], 'held', int(extra))
key_add(KEYS[1], key_id, 'h', extra)
redis.call('ZREM', KEYS[4], request_id)
redis.call('ZADD', KEYS[7], 'GT', int(now + ttl), request_id)
if redis.call('PTTL', KEYS[7]) < ttl then redis.call('PEXPIRE', KEYS[7], int(ttl)) end
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[6])
if budget then return {'OK', int(budget - spent - held - extra)} end
return {'OK', ''}
`;
