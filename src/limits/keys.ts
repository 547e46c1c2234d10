/**
 * Key layout of the fast gate. Every key of a tenant carries the hash tag `{tenantId}`, so all keys one script
 * touches hash to one Redis Cluster slot. Per tenant-month (prefix `lg`):
 *
 * - `lg:{t}:budget:YYYY-MM`        hash `spent`, `held` (micro-USD). Its existence means "seeded": admit answers
 *                                  NEEDS_RESEED without it.
 * - `lg:{t}:holds:YYYY-MM`         sorted set requestId -> hold expiry (ms, Redis TIME). Redis 7.0 has no
 *                                  per-field TTL, so expiry lives in the score and scripts sweep it.
 * - `lg:{t}:hold-amounts:YYYY-MM`  hash requestId -> hold (micro-USD).
 * - `lg:{t}:swept:YYYY-MM`         sorted set requestId -> swept-at (ms): holds that expired unsettled, so a late
 *                                  settlement knows its cost is not yet in `spent`.
 *
 * Per tenant: `lg:{t}:rate:rpm`, `lg:{t}:rate:tpm` (token buckets) and `lg:{t}:settled:<requestId>` (the
 * once-only settlement marker, value = actual micro-USD).
 */
export interface MonthKeys {
  readonly budget: string;
  readonly holds: string;
  readonly holdAmounts: string;
  readonly swept: string;
}

export interface RateKeys {
  readonly rpm: string;
  readonly tpm: string;
}

export interface LimitKeys {
  month(tenantId: string, month: string): MonthKeys;
  rate(tenantId: string): RateKeys;
  settled(tenantId: string, requestId: string): string;
}

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
    return `${prefix}:{${tenantId}}`;
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
    rate(tenantId) {
      const t = tag(tenantId);
      return { rpm: `${t}:rate:rpm`, tpm: `${t}:rate:tpm` };
    },
    settled(tenantId, requestId) {
      if (requestId.length === 0) throw new RangeError('limits: request id must be non-empty');
      return `${tag(tenantId)}:settled:${requestId}`;
    },
  };
}
