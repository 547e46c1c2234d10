import type { Prisma } from '../../generated/prisma/client';
import type { Actor } from './principal';

type Tx = Prisma.TransactionClient;

export interface AuditRecord {
  readonly action: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly tenantId?: string | null;
  readonly oldValue?: unknown;
  readonly newValue?: unknown;
}

/** JSON for audit values: bigint money as decimal strings of micro-dollars. */
const toJson = (v: unknown): Prisma.InputJsonValue | undefined =>
  v === undefined || v === null ? undefined : (JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))) as Prisma.InputJsonValue);

/**
 * Written in the same transaction as the change it describes: no change without its record. The actor is the admin
 * key that made it (its name, and its id unless it is the root key) or, as a plain string, a tenant id.
 */
export async function audit(tx: Tx, actor: Actor | string, r: AuditRecord): Promise<void> {
  const who = typeof actor === 'string' ? { name: actor, keyId: null } : actor;
  await tx.auditEntry.create({
    data: {
      actor: who.name,
      actorKeyId: who.keyId,
      action: r.action,
      targetType: r.targetType,
      targetId: r.targetId,
      tenantId: r.tenantId ?? null,
      oldValue: toJson(r.oldValue),
      newValue: toJson(r.newValue),
    },
  });
}
