import type { Db } from '../infra/prisma';
import { EpochCache, type Epoch } from '../infra/epoch';
import type { Catalog, ModelInfo, ProfileInfo } from './types';

export interface CatalogStore {
  /** The current catalog; cached per process until the epoch moves (an admin price change moves it), or its max age. */
  get(): Promise<Catalog>;
}

export async function loadCatalog(db: Db): Promise<Catalog> {
  const [models, profiles, links] = await Promise.all([
    db.model.findMany({ orderBy: { id: 'asc' } }),
    db.profile.findMany({ orderBy: { name: 'asc' } }),
    db.modelFallback.findMany({ orderBy: [{ modelId: 'asc' }, { position: 'asc' }] }),
  ]);
  const fallbacks = new Map<string, string[]>();
  for (const l of links) {
    const chain = fallbacks.get(l.modelId) ?? [];
    chain.push(l.fallbackModelId);
    fallbacks.set(l.modelId, chain);
  }
  return {
    models: new Map(
      models.map((m): [string, ModelInfo] => [
        m.id,
        {
          id: m.id,
          name: m.name,
          provider: m.provider,
          ttftUsEastMs: m.ttftUsEastMs,
          ttftAsiaMs: m.ttftAsiaMs,
          tokensPerSecond: m.tokensPerSecond,
          outputMicrosPerMillion: m.outputMicrosPerMillion,
          inputMicrosPerMillion: m.inputMicrosPerMillion,
          cachedInputMicrosPerMillion: m.cachedInputMicrosPerMillion,
          cacheWriteMicrosPerMillion: m.cacheWriteMicrosPerMillion,
          enabled: m.enabled,
        },
      ]),
    ),
    profiles: new Map(
      profiles.map((p): [string, ProfileInfo] => [
        p.name,
        { name: p.name, model: p.modelId, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap },
      ]),
    ),
    fallbacks,
  };
}

export function makeCatalogStore(db: Db, epoch: Epoch): CatalogStore {
  const cache = new EpochCache(epoch, () => loadCatalog(db), 1);
  return { get: () => cache.get('catalog') };
}
