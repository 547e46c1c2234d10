import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../../src/catalog/model-table';
import type { Catalog } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import { buildModelPlan } from '../../src/routing/plan';

const catalog: Catalog = {
  models: new Map(MODEL_TABLE.map((r) => [r.id, { ...r, inputMicrosPerMillion: null }])),
  profiles: new Map(PROFILE_TABLE.map((p) => [p.name, { name: p.name, model: p.model, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap }])),
  fallbacks: new Map(Object.entries(FALLBACK_TABLE)),
};

describe('buildModelPlan: a model id instead of a profile', () => {
  it('is that model and its default fallbacks, recorded under the model id', () => {
    const plan = buildModelPlan(catalog, 'minimax-m2.5', 'US_EAST');
    expect(plan.chain.map((c) => c.model.id)).toEqual(['minimax-m2.5', 'glm-5', 'kimi-k2.5']);
    expect(plan.profile.name).toBe('minimax-m2.5');
    expect(plan.chain[0]!.firstTokenTimeoutMs).toBe(900); // 2 x 450 ms TTFT
  });

  it('borrows the token limits of the widest profile that routes to the model', () => {
    // deepseek-v4-flash heads chat_default (1024/4096); qwen3-8b heads fast_classify (256/1024).
    expect(buildModelPlan(catalog, 'deepseek-v4-flash', 'US_EAST').profile).toMatchObject({ defaultMaxTokens: 1024, maxTokensCap: 4096 });
    expect(buildModelPlan(catalog, 'qwen3-8b', 'US_EAST').profile).toMatchObject({ defaultMaxTokens: 256, maxTokensCap: 1024 });
  });

  it('a model no profile routes to gets the widest limits any profile grants', () => {
    expect(buildModelPlan(catalog, 'glm-5', 'ASIA').profile).toMatchObject({ maxTokensCap: 16384 });
  });

  it('drops fallbacks the catalog no longer has', () => {
    const c: Catalog = { ...catalog, fallbacks: new Map([['glm-5', ['gone', 'kimi-k2.5', 'kimi-k2.5']]]) };
    expect(buildModelPlan(c, 'glm-5', 'US_EAST').chain.map((x) => x.model.id)).toEqual(['glm-5', 'kimi-k2.5']);
  });

  it('an unknown model is NOT_FOUND naming the field model', () => {
    const e = (() => {
      try {
        buildModelPlan(catalog, 'gpt-4o', 'US_EAST');
      } catch (err) {
        return err as AppError;
      }
    })();
    expect(e).toBeInstanceOf(AppError);
    expect(e!.code).toBe('NOT_FOUND');
    expect(e!.extensions).toEqual({ field: 'model' });
  });
});
