import { LIB_LUA } from './lib.lua';

/**
 * settle: applies a request's actual cost once, guarded by its settled marker (two hourly slots per tenant, see
 * marker_put: a retry within at least an hour of the first application applies nothing).
 *
 * With the month seeded, exactly one of:
 * - its hold exists: release it (held -= hold) and add the actual cost to spent;
 * - anything else (its hold was swept unsettled, or the id never had a hold, e.g. an amendment '<uuid>:v2'): add
 *   the actual cost to spent. A reseed that counted a settled row from Postgres wrote its marker (reseed.lua.ts),
 *   so a late settlement of that row stops at the marker above.
 * With the month missing nothing is added: the reseed that follows reads Postgres (the row is settled there, or it
 * is a hold whose marker the reseed finds and counts). The marker is written either way.
 *
 * The request's in-flight slot is released. The tokens window is corrected by (actual - estimate): a refund comes
 * off the bucket the reservation went to; usage above the reservation counts from now (window_correct).
 *
 * The API key's share goes the same way: its hold leaves the key's held, the cost joins the key's spent, and its
 * tokens window is corrected like the tenant's.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash   KEYS[4] swept tombstones
 * KEYS[5] settled markers slot 0   KEYS[6] settled markers slot 1   KEYS[7] tokens/min window   KEYS[8] in-flight zset
 * KEYS[9] the key's tokens/min window (only with an API key id)
 * ARGV[1] clock offset ms   ARGV[2] requestId   ARGV[3] actual micro-USD   ARGV[4] actual - estimated tokens
 * ARGV[5] month state TTL ms   ARGV[6] API key id, '' = none (then the hold's own, if it names one)
 *
 * Returns 1 when this call applied the settlement, 0 when an earlier call had.
 */
export const SETTLE_LUA = `${LIB_LUA}
local request_id = ARGV[2]
local now = now_ms()
if marker_get(KEYS[5], KEYS[6], request_id, now) then return 0 end
marker_put(KEYS[5], KEYS[6], request_id, ARGV[3], now)

local actual = tonumber(ARGV[3])
local token_delta = tonumber(ARGV[4])
redis.call('ZREM', KEYS[8], request_id)

local hold, admitted_idx, hold_key = hold_parse(redis.call('HGET', KEYS[3], request_id))
local key_id = opt_str(ARGV[6]) or hold_key
if token_delta ~= 0 then
  window_correct(KEYS[7], token_delta, admitted_idx, now)
  if key_id and KEYS[9] then window_correct(KEYS[9], token_delta, admitted_idx, now) end
end

if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end

if hold then
  redis.call('ZREM', KEYS[2], request_id)
  redis.call('HDEL', KEYS[3], request_id)
  redis.call('HINCRBY', KEYS[1], 'held', int(-hold))
  key_add(KEYS[1], hold_key, 'h', -hold)
else
  redis.call('ZREM', KEYS[4], request_id)
end
redis.call('HINCRBY', KEYS[1], 'spent', int(actual))
key_add(KEYS[1], key_id, 's', actual)
touch_month(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[5])
return 1
`;
