import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../../src/catalog/model-table';
import type { Catalog, OverrideInfo } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import { buildPlan, firstTokenDeadlineMs, type Plan } from '../../src/routing/plan';

/** The seed catalog, as the database would load it. */
function seedCatalog(): Catalog {
  return {
    models: new Map(MODEL_TABLE.map((r) => [r.id, { ...r, inputMicrosPerMillion: null }])),
    profiles: new Map(PROFILE_TABLE.map((p) => [p.name, { name: p.name, model: p.model, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap }])),
    fallbacks: new Map(Object.entries(FALLBACK_TABLE)),
  };
}

const ids = (plan: Plan): string[] => plan.chain.map((m) => m.model.id);
const catalog = seedCatalog();

describe('buildPlan: chains', () => {
  it('uses the default profile and its model’s default fallbacks', () => {
    const plan = buildPlan(catalog, [], 'chat_default', 'US_EAST');
    expect(plan.profile.name).toBe('chat_default');
    expect(plan.region).toBe('US_EAST');
    expect(ids(plan)).toEqual(['deepseek-v4-flash', 'hunyuan-turbos', 'qwen3-32b']);
  });

  it('gives a model without default fallbacks a chain of one', () => {
    expect(ids(buildPlan(catalog, [], 'fast_classify', 'US_EAST'))).toEqual(['qwen3-8b']);
  });

  it('prefers the region override to the ALL override, and ALL to the default', () => {
    const overrides: OverrideInfo[] = [
      { profile: 'chat_default', scope: 'ALL', model: 'glm-5', fallbacks: null },
      { profile: 'chat_default', scope: 'ASIA', model: 'kimi-k2.5', fallbacks: null },
      { profile: 'long_form', scope: 'US_EAST', model: 'qwen3-8b', fallbacks: null },
    ];
    expect(ids(buildPlan(catalog, overrides, 'chat_default', 'ASIA'))[0]).toBe('kimi-k2.5');
    expect(ids(buildPlan(catalog, overrides, 'chat_default', 'US_EAST'))[0]).toBe('glm-5');
    // An override of another profile does not leak.
    expect(ids(buildPlan(catalog, overrides, 'chat_speed', 'US_EAST'))).toEqual(['step-3.5-flash', 'deepseek-v4-flash']);
  });

  it('finds the region override wherever it is in the list', () => {
    const overrides: OverrideInfo[] = [
      { profile: 'chat_default', scope: 'ASIA', model: 'kimi-k2.5', fallbacks: null },
      { profile: 'chat_default', scope: 'ALL', model: 'glm-5', fallbacks: null },
    ];
    expect(ids(buildPlan(catalog, overrides, 'chat_default', 'ASIA'))[0]).toBe('kimi-k2.5');
    expect(ids(buildPlan(catalog, overrides, 'chat_default', 'US_EAST'))[0]).toBe('glm-5');
  });

  it('null fallbacks: the overriding model’s own default chain', () => {
    const o: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'minimax-m2.5', fallbacks: null }];
    expect(ids(buildPlan(catalog, o, 'chat_default', 'US_EAST'))).toEqual(['minimax-m2.5', 'glm-5', 'kimi-k2.5']);
  });

  it('given fallbacks replace the default chain; [] means none', () => {
    const replaced: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'deepseek-v4-flash', fallbacks: ['qwen3-8b', 'glm-5'] }];
    expect(ids(buildPlan(catalog, replaced, 'chat_default', 'US_EAST'))).toEqual(['deepseek-v4-flash', 'qwen3-8b', 'glm-5']);
    const none: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'deepseek-v4-flash', fallbacks: [] }];
    expect(ids(buildPlan(catalog, none, 'chat_default', 'US_EAST'))).toEqual(['deepseek-v4-flash']);
  });

  it('drops duplicates and models the catalog does not know', () => {
    const o: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'glm-5', fallbacks: ['glm-5', 'retired-model', 'qwen3-8b', 'qwen3-8b'] }];
    expect(ids(buildPlan(catalog, o, 'chat_default', 'US_EAST'))).toEqual(['glm-5', 'qwen3-8b']);
  });

  it('keeps the profile’s token limits under an override', () => {
    const o: OverrideInfo[] = [{ profile: 'fast_classify', scope: 'ALL', model: 'glm-5', fallbacks: null }];
    const plan = buildPlan(catalog, o, 'fast_classify', 'US_EAST');
    expect(plan.profile).toMatchObject({ defaultMaxTokens: 256, maxTokensCap: 1024 });
  });
});

describe('buildPlan: unknown profile', () => {
  it('is BAD_USER_INPUT naming the field and listing every valid profile', () => {
    let caught: unknown;
    try {
      buildPlan(catalog, [], 'chat_fancy', 'US_EAST');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AppError);
    const e = caught as AppError;
    expect(e.code).toBe('BAD_USER_INPUT');
    expect(e.extensions).toEqual({ field: 'profile' });
    expect(e.message).toBe('profile: unknown profile "chat_fancy"; valid profiles: chat_default, chat_speed, deep_reasoning, fast_classify, long_form');
  });
});

describe('first-token deadlines', () => {
  const deadline = (id: string, region: 'US_EAST' | 'ASIA'): number =>
    buildPlan(catalog, [{ profile: 'chat_default', scope: 'ALL', model: id, fallbacks: [] }], 'chat_default', region).chain[0]!.firstTokenTimeoutMs;

  it('is twice the measured TTFT, at least 800 ms (US East)', () => {
    expect(deadline('qwen3.5-397b', 'US_EAST')).toBe(2400);
    expect(deadline('deepseek-r1', 'US_EAST')).toBe(1600);
    expect(deadline('kimi-k2.5', 'US_EAST')).toBe(1200);
    expect(deadline('minimax-m2.5', 'US_EAST')).toBe(900);
    expect(deadline('step-3.5-flash', 'US_EAST')).toBe(800);
    expect(deadline('deepseek-v4-flash', 'US_EAST')).toBe(800);
  });

  it('uses the Asia figure where there is one, the US East figure otherwise', () => {
    expect(deadline('kimi-k2.5', 'ASIA')).toBe(960);
    expect(deadline('glm-5', 'ASIA')).toBe(840);
    expect(deadline('glm-5', 'US_EAST')).toBe(1000);
    expect(deadline('qwen3.5-397b', 'ASIA')).toBe(2400);
  });

  it('follows the configured floor and multiple, rounding up', () => {
    const glm5 = catalog.models.get('glm-5')!;
    expect(firstTokenDeadlineMs(glm5, 'ASIA', { firstTokenFloorMs: 100, ttftMultiple: 1.5 })).toBe(630);
    expect(firstTokenDeadlineMs({ ttftUsEastMs: 333, ttftAsiaMs: null }, 'ASIA', { firstTokenFloorMs: 0, ttftMultiple: 1.01 })).toBe(337);
    const plan = buildPlan(catalog, [], 'chat_default', 'US_EAST', { firstTokenFloorMs: 1000, ttftMultiple: 3 });
    expect(plan.chain.map((m) => m.firstTokenTimeoutMs)).toEqual([1000, 1000, 1000]);
  });
});
