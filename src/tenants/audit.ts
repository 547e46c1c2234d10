import type { Prisma } from '../../generated/prisma/client';

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

/** Written in the same transaction as the change it describes: no change without its record. */
export async function audit(tx: Tx, actor: string, r: AuditRecord): Promise<void> {
  await tx.auditEntry.create({
    data: {
      actor,
      action: r.action,
      targetType: r.targetType,
      targetId: r.targetId,
      tenantId: r.tenantId ?? null,
      oldValue: toJson(r.oldValue),
      newValue: toJson(r.newValue),
    },
  });
}
