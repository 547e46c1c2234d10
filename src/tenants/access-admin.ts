import { badInput } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { makeAdminCommit } from './admin-commit';
import { tenantOrThrow } from './admin-service';
import { audit } from './audit';
import type { ModelAccess } from './tenant-store';
import type { Actor } from './principal';

/** The admin's controls of what a tenant may do: suspension and its model access list. */
export interface AccessAdmin {
  /** Nothing changes when the tenant is already suspended. */
  suspendTenant(tenantId: string, reason: string | null, actor: Actor): Promise<void>;
  /** Nothing changes when the tenant is active. */
  resumeTenant(tenantId: string, actor: Actor): Promise<void>;
  setModelAccess(tenantId: string, mode: ModelAccess['mode'], models: readonly string[] | null, actor: Actor): Promise<void>;
}

const MAX_REASON = 500;
const MAX_MODELS = 200;

function checkReason(reason: string | null): string | null {
  const r = reason?.trim() ?? '';
  if (r === '') return null;
  if (r.length > MAX_REASON) throw badInput('reason', `at most ${MAX_REASON} characters, got ${r.length}`);
  if (/\p{Cc}/u.test(r)) throw badInput('reason', 'control characters (line breaks, tabs...) are not allowed; write it on one line');
  return r;
}

/** The list's shape; the ids' existence is checked against the models table inside the transaction. */
function checkList(mode: ModelAccess['mode'], models: readonly string[] | null): string[] {
  const list = models ?? [];
  if (mode === 'ALL') {
    if (list.length) throw badInput('models', 'mode ALL takes no models: leave models out, or choose ALLOW or DENY');
    return [];
  }
  if (list.length === 0 || list.length > MAX_MODELS) throw badInput('models', `mode ${mode} needs 1 to ${MAX_MODELS} model ids, got ${list.length}`);
  const dup = list.find((m, i) => list.indexOf(m) !== i);
  if (dup !== undefined) throw badInput('models', `"${dup.slice(0, 64)}" is listed twice`);
  return [...list];
}

/**
 * Each change validates everything before writing, then writes the tenant and its audit record through the
 * epoch-announcing admin commit, so it applies to the next request on every instance. Running requests of a
 * suspended tenant are ended by the checkpointer (accounting/checkpointer.ts), which sees the suspension.
 */
export function makeAccessAdmin(deps: { db: Db; epoch: Epoch; logger?: Logger }): AccessAdmin {
  const commit = makeAdminCommit(deps);
  return {
    async suspendTenant(tenantId, reason, actor) {
      const why = checkReason(reason);
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        if (t.suspendedAt) return;
        const suspendedAt = new Date();
        await tx.tenant.update({ where: { id: t.id }, data: { suspendedAt, suspensionReason: why } });
        await audit(tx, actor, {
          action: 'suspendTenant',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { suspendedAt: null },
          newValue: { suspendedAt, reason: why },
        });
      });
    },

    async resumeTenant(tenantId, actor) {
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        if (!t.suspendedAt) return;
        await tx.tenant.update({ where: { id: t.id }, data: { suspendedAt: null, suspensionReason: null } });
        await audit(tx, actor, {
          action: 'resumeTenant',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { suspendedAt: t.suspendedAt, reason: t.suspensionReason },
          newValue: { suspendedAt: null },
        });
      });
    },

    async setModelAccess(tenantId, mode, models, actor) {
      const list = checkList(mode, models);
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        const known = new Set((await tx.model.findMany({ where: { id: { in: list } }, select: { id: true } })).map((m) => m.id));
        const unknown = list.filter((m) => !known.has(m));
        if (unknown.length)
          throw badInput(
            'models',
            `unknown model${unknown.length > 1 ? 's' : ''} ${unknown.map((m) => `"${m.slice(0, 64)}"`).join(', ')}; the models query lists the known ones`,
          );
        await tx.tenant.update({ where: { id: t.id }, data: { modelAccessMode: mode, modelAccessList: list } });
        await audit(tx, actor, {
          action: 'setTenantModelAccess',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { mode: t.modelAccessMode, models: t.modelAccessList },
          newValue: { mode, models: list },
        });
      });
    },
  };
}
