/**
 * key-spent: every API key's spent in a tenant-month (the budget hash's 'k:<apiKeyId>:s' fields), for the
 * reconciler to compare with the ledger. Reads only.
 *
 * KEYS[1] budget hash
 *
 * Returns {apiKeyId, micro-USD, ...} (flat), or nil when the month is missing (the next admission reseeds it).
 */
export const KEY_SPENT_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local id = string.match(flat[i], '^k:(.+):s$')
  if id then
    out[#out + 1] = id
    out[#out + 1] = flat[i + 1]
  end
end
return out
`;
