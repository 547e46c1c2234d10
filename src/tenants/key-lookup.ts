import type { Db } from '../infra/prisma';
import type { AdminScope, KeyLimits } from './principal';

/** What authentication needs of a presented key's row, whichever table it is in. */
export type KeyRecord =
  | {
      readonly kind: 'tenant';
      readonly id: string;
      readonly tenantId: string;
      readonly revokedAt: Date | null;
      readonly graceEndsAt: Date | null;
      readonly limits: KeyLimits;
    }
  | {
      readonly kind: 'admin';
      readonly id: string;
      readonly name: string;
      readonly scope: AdminScope;
      readonly revokedAt: Date | null;
      readonly graceEndsAt: Date | null;
    };

/**
 * The row of a key by its SHA-256: its current secret, or the secret a rotation replaced (then graceEndsAt says
 * until when it is still accepted). Tenant keys first (nearly every request); admin keys only when none matched.
 */
export async function findKey(db: Db, hash: string): Promise<KeyRecord | null> {
  const t = await db.apiKey.findFirst({
    where: { OR: [{ hash }, { previousHash: hash }] },
    select: {
      id: true,
      tenantId: true,
      revokedAt: true,
      hash: true,
      previousExpiresAt: true,
      monthlyBudgetMicros: true,
      requestsPerMinute: true,
      tokensPerMinute: true,
    },
  });
  if (t) {
    return {
      kind: 'tenant',
      id: t.id,
      tenantId: t.tenantId,
      revokedAt: t.revokedAt,
      graceEndsAt: t.hash === hash ? null : (t.previousExpiresAt ?? new Date(0)),
      limits: { budgetMicros: t.monthlyBudgetMicros, requestsPerMinute: t.requestsPerMinute, tokensPerMinute: t.tokensPerMinute },
    };
  }
  const a = await db.adminKey.findFirst({
    where: { OR: [{ hash }, { previousHash: hash }] },
    select: { id: true, name: true, scope: true, revokedAt: true, hash: true, previousExpiresAt: true },
  });
  if (!a) return null;
  return {
    kind: 'admin',
    id: a.id,
    name: a.name,
    scope: a.scope,
    revokedAt: a.revokedAt,
    graceEndsAt: a.hash === hash ? null : (a.previousExpiresAt ?? new Date(0)),
  };
}

/** Records that keys were used, off the request path. */
export async function touchKey(db: Db, kind: KeyRecord['kind'], id: string, at: Date): Promise<void> {
  if (kind === 'tenant') await db.apiKey.update({ where: { id }, data: { lastUsedAt: at } });
  else await db.adminKey.update({ where: { id }, data: { lastUsedAt: at } });
}
