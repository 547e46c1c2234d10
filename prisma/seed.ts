import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../src/catalog/model-table';
import type { Db } from '../src/infra/prisma';

/**
 * Seeds the model table, profiles and fallback chains. Insert-only: a second run changes nothing, and a price an
 * admin has set is never overwritten (existing model rows are not touched at all). Input prices stay null.
 */
export async function seedCatalog(db: Db): Promise<{ models: number; profiles: number; fallbacks: number }> {
  return db.$transaction(async (tx) => {
    const models = await tx.model.createMany({
      data: MODEL_TABLE.map((m) => ({
        id: m.id,
        name: m.name,
        provider: m.provider,
        outputMicrosPerMillion: m.outputMicrosPerMillion,
        inputMicrosPerMillion: null,
        ttftUsEastMs: m.ttftUsEastMs,
        ttftAsiaMs: m.ttftAsiaMs,
        tokensPerSecond: m.tokensPerSecond,
      })),
      skipDuplicates: true,
    });
    if (models.count > 0) {
      // Price history starts with the seed price of each model this run created.
      const existing = new Set((await tx.modelPrice.findMany({ select: { modelId: true }, distinct: ['modelId'] })).map((p) => p.modelId));
      await tx.modelPrice.createMany({
        data: MODEL_TABLE.filter((m) => !existing.has(m.id)).map((m) => ({
          modelId: m.id,
          outputMicrosPerMillion: m.outputMicrosPerMillion,
          inputMicrosPerMillion: null,
          effectiveFrom: new Date(0),
          source: 'seed',
        })),
      });
    }
    const profiles = await tx.profile.createMany({
      data: PROFILE_TABLE.map((p) => ({
        name: p.name,
        modelId: p.model,
        description: p.why,
        defaultMaxTokens: p.defaultMaxTokens,
        maxTokensCap: p.maxTokensCap,
      })),
      skipDuplicates: true,
    });
    const fallbacks = await tx.modelFallback.createMany({
      data: Object.entries(FALLBACK_TABLE).flatMap(([modelId, chain]) => chain.map((fallbackModelId, position) => ({ modelId, position, fallbackModelId }))),
      skipDuplicates: true,
    });
    return { models: models.count, profiles: profiles.count, fallbacks: fallbacks.count };
  });
}
