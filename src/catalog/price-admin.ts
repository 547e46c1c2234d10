import { AppError } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { makeAdminCommit } from '../tenants/admin-commit';
import { parseUsd, type Micros } from '../accounting/money';
import { audit } from '../tenants/audit';
import type { Maybe } from '../tenants/admin-service';
import { ROOT_ACTOR, type Actor } from '../tenants/principal';
import { loadCatalog } from './catalog-store';
import type { ModelInfo } from './types';

/** The admin's model-pricing changes, each through admin-commit (audit + epoch announce inside the transaction). */
export interface PriceAdmin {
  /**
   * Sets a model's output price and, when given, its input price (explicit null: the input is not priced) from now.
   * Writes the model, a price-history row carrying all four prices in force and an audit record in one transaction.
   * Unknown model: NOT_FOUND; a bad amount: BAD_USER_INPUT naming the argument; nothing written either way.
   */
  setModelPrice(model: string, output: string, input: Maybe<string>, actor?: Actor): Promise<ModelInfo>;
  /**
   * Sets a model's cached-input and cache-write prices from now: an argument left out keeps its price, an explicit
   * null clears it (those tokens are then charged at the input price). Validates both before writing; writes the
   * model, a price-history row carrying all four prices and an audit record in one transaction, announced on the
   * epoch before it commits so every instance prices its next request with them. Unknown model: NOT_FOUND; a bad amount:
   * BAD_USER_INPUT naming the argument; nothing written either way.
   */
  setCachePrices(model: string, cachedInput: Maybe<string>, cacheWrite: Maybe<string>, actor?: Actor): Promise<ModelInfo>;
}

const parsed = (m: Maybe<string>, field: string): Micros | null | undefined => (m.given ? (m.value === null ? null : parseUsd(m.value, field)) : undefined);

export function makePriceAdmin(deps: { db: Db; epoch: Epoch; logger?: Logger }): PriceAdmin {
  const { db } = deps;
  const commit = makeAdminCommit(deps);
  return {
    async setModelPrice(model, output, input, actor = ROOT_ACTOR) {
      const out = parseUsd(output, 'outputUsdPerMillion');
      const inp = parsed(input, 'inputUsdPerMillion');
      await commit(async (tx) => {
        const m = await tx.model.findUnique({ where: { id: model } });
        if (!m) throw new AppError('NOT_FOUND', `no model "${model.slice(0, 64)}"`);
        const next = { outputMicrosPerMillion: out, inputMicrosPerMillion: inp === undefined ? m.inputMicrosPerMillion : inp };
        await tx.model.update({ where: { id: model }, data: { ...next, priceSetByAdmin: true } });
        // The history row carries the cache prices in force too, so each row is the model's whole price from then.
        const cache = { cachedInputMicrosPerMillion: m.cachedInputMicrosPerMillion, cacheWriteMicrosPerMillion: m.cacheWriteMicrosPerMillion };
        await tx.modelPrice.create({ data: { modelId: model, ...next, ...cache, source: 'admin' } });
        await audit(tx, actor, {
          action: 'setModelPrice',
          targetType: 'model',
          targetId: model,
          oldValue: { outputMicrosPerMillion: m.outputMicrosPerMillion, inputMicrosPerMillion: m.inputMicrosPerMillion },
          newValue: next,
        });
      });
      const catalog = await loadCatalog(db);
      return catalog.models.get(model)!;
    },

    async setCachePrices(model, cachedInput, cacheWrite, actor = ROOT_ACTOR) {
      const cached = parsed(cachedInput, 'cachedInputUsdPerMillion');
      const write = parsed(cacheWrite, 'cacheWriteUsdPerMillion');
      await commit(async (tx) => {
        const m = await tx.model.findUnique({ where: { id: model } });
        if (!m) throw new AppError('NOT_FOUND', `no model "${model.slice(0, 64)}"`);
        const before = { cachedInputMicrosPerMillion: m.cachedInputMicrosPerMillion, cacheWriteMicrosPerMillion: m.cacheWriteMicrosPerMillion };
        const next = {
          cachedInputMicrosPerMillion: cached === undefined ? m.cachedInputMicrosPerMillion : cached,
          cacheWriteMicrosPerMillion: write === undefined ? m.cacheWriteMicrosPerMillion : write,
        };
        await tx.model.update({ where: { id: model }, data: { ...next, priceSetByAdmin: true } });
        await tx.modelPrice.create({
          data: { modelId: model, outputMicrosPerMillion: m.outputMicrosPerMillion, inputMicrosPerMillion: m.inputMicrosPerMillion, ...next, source: 'admin' },
        });
        await audit(tx, actor, { action: 'setModelCachePrices', targetType: 'model', targetId: model, oldValue: before, newValue: next });
      });
      const catalog = await loadCatalog(db);
      return catalog.models.get(model)!;
    },
  };
}
