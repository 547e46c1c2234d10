import { AppError } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { makeAdminCommit } from '../tenants/admin-commit';
import { audit } from '../tenants/audit';
import { loadCatalog } from './catalog-store';
import type { ModelInfo } from './types';
import type { Actor } from '../tenants/principal';

export interface ModelSwitch {
  /**
   * Enables or disables a model for every tenant. Announced on the epoch before it commits, so every instance's
   * next request plans without it (tenants/access.ts leaves it out of chains). Unknown model: NOT_FOUND, nothing
   * written; setting the value it already has writes nothing.
   */
  setEnabled(model: string, enabled: boolean, actor: Actor): Promise<ModelInfo>;
}

export function makeModelSwitch(deps: { db: Db; epoch: Epoch; logger?: Logger }): ModelSwitch {
  const commit = makeAdminCommit(deps);
  return {
    async setEnabled(model, enabled, actor) {
      await commit(async (tx) => {
        const m = await tx.model.findUnique({ where: { id: model }, select: { enabled: true } });
        if (!m) throw new AppError('NOT_FOUND', `no model "${model.slice(0, 64)}"; the models query lists the known ones`, { field: 'model' });
        if (m.enabled === enabled) return;
        await tx.model.update({ where: { id: model }, data: { enabled } });
        await audit(tx, actor, { action: 'setModelEnabled', targetType: 'model', targetId: model, oldValue: { enabled: m.enabled }, newValue: { enabled } });
      });
      return (await loadCatalog(deps.db)).models.get(model)!;
    },
  };
}
