/**
 * repair-release-hold: releases what is left of a hold whose request is already settled in the ledger by someone
 * else. It happens when an instance stalls on Postgres between its write-ahead INSERT and its admission for longer
 * than the lease: another instance reaps the row (its settlement finds no hold yet), then the admission places the
 * hold. Nothing settles that hold afterwards, so the request, finding its row settled, releases it here. Spent is
 * not touched (the settlement and any amendment carry the cost). No hold: nothing happens.
 *
 * The amount is the leading integer of the hold's value, so the plain, "amount:slot" and "amount:slot:key" formats
 * read; a hold naming its API key leaves that key's held too.
 *
 * KEYS[1] budget hash   KEYS[2] holds zset   KEYS[3] hold amounts hash
 * ARGV[1] requestId
 *
 * Returns 1 when a hold was released, 0 when there was none.
 */
export const REPAIR_RELEASE_HOLD_LUA = `
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return 0 end
local amount = tonumber(string.match(v, '^%d+')) or 0
local key_id = string.match(v, '^%d+:%d*:(.+)$')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'held', -amount)
  if key_id then redis.call('HINCRBY', KEYS[1], 'k:' .. key_id .. ':h', -amount) end
end
return 1
`;
