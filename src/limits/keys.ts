/**
 * Key layout of the fast gate, format version 2 (the `v2` segment; see README "Upgrading the gate's Redis
 * state"). Every key of a tenant carries the hash tag `{tenantId}`, so all keys one script touches hash to one
 * Redis Cluster slot. Per tenant-month (prefix `lg`):
 *
 * - `lg:{t}:v2:budget:YYYY-MM`        hash `spent`, `held` (micro-USD), `gen` (the reseed that wrote it). Its
 *                                     existence means "seeded": admit answers NEEDS_RESEED without it.
 * - `lg:{t}:v2:holds:YYYY-MM`         sorted set requestId -> hold expiry (ms, Redis TIME). Redis 7.0 has no
 *                                     per-field TTL, so expiry lives in the score and scripts sweep it.
 * - `lg:{t}:v2:hold-amounts:YYYY-MM`  hash requestId -> 'micro-USD:admission bucket'.
 * - `lg:{t}:v2:swept:YYYY-MM`         sorted set requestId -> swept-at (ms): holds that expired unsettled.
 *
 * Per tenant: `lg:{t}:v2:win:rpm`, `lg:{t}:v2:win:tpm` (rolling windows: hash second -> count, at most 61 fields),
 * `lg:{t}:v2:inflight` (sorted set requestId -> slot expiry) and `lg:{t}:v2:settled:0|1` (the once-only settlement
 * markers, two hourly slots: requestId -> actual micro-USD).
 *
 * Per API key (same tag, so one slot with its tenant): `lg:{t}:v2:key:<apiKeyId>:win:rpm|tpm` (its rolling windows).
 * Its monthly spent and held are fields of the tenant-month's budget hash (`k:<apiKeyId>:s|h`; see
 * scripts/lib.lua.ts), whose `kv` field names that layout.
 *
 * Version 1 (the previous release) used `lg:{t}:budget:YYYY-MM`, ..., `lg:{t}:rate:rpm|tpm` (token buckets) and
 * one `lg:{t}:settled:<requestId>` key per request; v2 code never reads them (they expire by their own TTLs).
 */
export interface MonthKeys {
  readonly budget: string;
  readonly holds: string;
  readonly holdAmounts: string;
  readonly swept: string;
}

export interface TenantKeys {
  readonly rpm: string;
  readonly tpm: string;
  readonly inflight: string;
  readonly settled: readonly [string, string];
}

export interface ApiKeyKeys {
  readonly rpm: string;
  readonly tpm: string;
}

export interface LimitKeys {
  month(tenantId: string, month: string): MonthKeys;
  tenant(tenantId: string): TenantKeys;
  apiKey(tenantId: string, apiKeyId: string): ApiKeyKeys;
}

/** The gate's Redis format version, part of every key name. */
export const FORMAT_VERSION = 'v2';

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

/** Throws RangeError for a prefix, tenant id or month that would break the layout (a caller bug, not a denial). */
export function limitKeys(prefix = 'lg'): LimitKeys {
  // Redis hashes the text between the first '{' and the next '}': a brace anywhere before or inside the tag
  // would move keys of one tenant to different slots.
  if (prefix.length === 0 || /[{}]/.test(prefix)) throw new RangeError(`limits: invalid key prefix ${JSON.stringify(prefix)}`);
  const tag = (tenantId: string): string => {
    if (tenantId.length === 0 || /[{}]/.test(tenantId)) {
      throw new RangeError(`limits: tenant id must be non-empty and contain no braces, got ${JSON.stringify(tenantId)}`);
    }
    return `${prefix}:{${tenantId}}:${FORMAT_VERSION}`;
  };
  return {
    month(tenantId, month) {
      if (!MONTH.test(month)) throw new RangeError(`limits: month must be YYYY-MM, got ${JSON.stringify(month)}`);
      const t = tag(tenantId);
      return {
        budget: `${t}:budget:${month}`,
        holds: `${t}:holds:${month}`,
        holdAmounts: `${t}:hold-amounts:${month}`,
        swept: `${t}:swept:${month}`,
      };
    },
    tenant(tenantId) {
      const t = tag(tenantId);
      return { rpm: `${t}:win:rpm`, tpm: `${t}:win:tpm`, inflight: `${t}:inflight`, settled: [`${t}:settled:0`, `${t}:settled:1`] };
    },
    apiKey(tenantId, apiKeyId) {
      const k = `${tag(tenantId)}:key:${apiKeyIdPart(apiKeyId)}`;
      return { rpm: `${k}:win:rpm`, tpm: `${k}:win:tpm` };
    },
  };
}

/**
 * An API key id as it goes into key names and hold values ('amount:bucket:keyId'): non-empty, no braces (the hash
 * tag) and no ':' (the hold value's separator). Throws RangeError otherwise (a caller bug).
 */
export function apiKeyIdPart(apiKeyId: string): string {
  if (apiKeyId.length === 0 || /[{}:]/.test(apiKeyId)) {
    throw new RangeError(`limits: API key id must be non-empty and contain no braces or colons, got ${JSON.stringify(apiKeyId)}`);
  }
  return apiKeyId;
}
