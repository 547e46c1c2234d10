/**
 * repair-spent: sets a tenant-month's `spent` to the ledger's settled sum, only if `spent` still has the value the
 * caller observed before it read the ledger (compare-and-set). Settlements only ever add, so an unchanged `spent`
 * means none landed in between: the ledger sum read after the observation is then the whole truth, and writing it
 * loses nothing and counts nothing twice. Anything that moved `spent` meanwhile makes this a no-op; the caller
 * tries again on its next pass. Holds are left alone (they expire by themselves).
 *
 * The same for one API key's spent (the field 'k:<apiKeyId>:s'), against the ledger's sum of that key's rows.
 *
 * KEYS[1] budget hash
 * ARGV[1] spent micro-USD as observed   ARGV[2] spent micro-USD to write (the ledger's settled sum)
 * ARGV[3] the field: 'spent' (the tenant's) or 'k:<apiKeyId>:s'
 *
 * Returns 1 when it wrote, 0 when the month is missing or `spent` moved.
 */
export const REPAIR_SPENT_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local spent = redis.call('HGET', KEYS[1], ARGV[3]) or '0'
if tonumber(spent) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[2])
return 1
`;
