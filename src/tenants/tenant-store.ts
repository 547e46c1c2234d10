import type { OverrideInfo } from '../catalog/types';
import type { Db } from '../infra/prisma';
import { EpochCache, type Epoch } from '../infra/epoch';
import { AppError } from '../errors';
import type { Micros } from '../accounting/money';

/** What the gate and the router need of a tenant, per request. */
export interface TenantSettings {
  readonly id: string;
  readonly name: string;
  readonly monthlyBudgetMicros: Micros | null;
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
  /** Requests in flight at once; null = no cap. */
  readonly maxConcurrentRequests: number | null;
  readonly overrides: readonly OverrideInfo[];
  /** Null while active. Set: every request of the tenant's keys is refused (see tenants/access.ts). */
  readonly suspension: Suspension | null;
  readonly modelAccess: ModelAccess;
}

export interface Suspension {
  readonly at: Date;
  readonly reason: string | null;
}

/** ALL: every enabled model (models is empty); ALLOW: only `models`; DENY: every enabled model but `models`. */
export interface ModelAccess {
  readonly mode: 'ALL' | 'ALLOW' | 'DENY';
  readonly models: readonly string[];
}

export interface TenantStore {
  /** NOT_FOUND for an unknown tenant. Cached until the epoch moves (every admin change moves it). */
  get(tenantId: string): Promise<TenantSettings>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID.test(s);

async function loadTenantSettings(db: Db, tenantId: string): Promise<TenantSettings | null> {
  if (!isUuid(tenantId)) return null;
  const t = await db.tenant.findUnique({ where: { id: tenantId }, include: { overrides: true } });
  if (!t) return null;
  return {
    id: t.id,
    name: t.name,
    monthlyBudgetMicros: t.monthlyBudgetMicros,
    requestsPerMinute: t.requestsPerMinute,
    tokensPerMinute: t.tokensPerMinute,
    maxConcurrentRequests: t.maxConcurrentRequests,
    overrides: t.overrides.map((o) => ({
      profile: o.profile,
      scope: o.scope,
      model: o.modelId,
      fallbacks: o.replaceFallbacks ? o.fallbacks : null,
    })),
    suspension: t.suspendedAt ? { at: t.suspendedAt, reason: t.suspensionReason } : null,
    modelAccess: { mode: t.modelAccessMode, models: t.modelAccessList },
  };
}

export function makeTenantStore(db: Db, epoch: Epoch): TenantStore {
  const cache = new EpochCache(epoch, (id: string) => loadTenantSettings(db, id));
  return {
    async get(tenantId) {
      const t = await cache.get(tenantId);
      if (!t) {
        cache.delete(tenantId);
        throw new AppError('NOT_FOUND', `no tenant with id "${tenantId.slice(0, 64)}"`);
      }
      return t;
    },
  };
}
