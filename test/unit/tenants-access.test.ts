import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../../src/catalog/model-table';
import type { Catalog } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import { DEFAULT_ROUTING_OPTIONS } from '../../src/routing/plan';
import { planFor, refuseSuspended, usableCatalog } from '../../src/tenants/access';
import type { ModelAccess, TenantSettings } from '../../src/tenants/tenant-store';
import { ROOT_ACTOR, type Principal } from '../../src/tenants/principal';

/** The seed catalog; `disabled` models as the admin's global switch leaves them. */
function seedCatalog(disabled: string[] = []): Catalog {
  return {
    models: new Map(MODEL_TABLE.map((r) => [r.id, { ...r, inputMicrosPerMillion: null, enabled: !disabled.includes(r.id) }])),
    profiles: new Map(PROFILE_TABLE.map((p) => [p.name, { name: p.name, model: p.model, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap }])),
    fallbacks: new Map(Object.entries(FALLBACK_TABLE)),
  };
}

const ALL: ModelAccess = { mode: 'ALL', models: [] };
const tenant = (modelAccess: ModelAccess = ALL, overrides: TenantSettings['overrides'] = []) => ({ modelAccess, overrides });
const chain = (c: Catalog, t: ReturnType<typeof tenant>, input: { profile: string; model?: string }) =>
  planFor(c, t, input, 'US_EAST', DEFAULT_ROUTING_OPTIONS).chain.map((m) => m.model.id);
const refusal = (f: () => unknown): AppError => {
  try {
    f();
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
};

describe('planFor', () => {
  const catalog = seedCatalog();

  it('leaves the plan as it is for a tenant that may use every model', () => {
    expect(chain(catalog, tenant(), { profile: 'chat_default' })).toEqual(['deepseek-v4-flash', 'hunyuan-turbos', 'qwen3-32b']);
  });

  it('leaves denied models out of profiles, overrides and model-id chains', () => {
    const deny = tenant({ mode: 'DENY', models: ['deepseek-v4-flash', 'qwen3-32b'] }, [
      { profile: 'fast_classify', scope: 'ALL', model: 'qwen3-32b', fallbacks: ['qwen3-8b'] },
    ]);
    expect(chain(catalog, deny, { profile: 'chat_default' })).toEqual(['hunyuan-turbos']);
    expect(chain(catalog, deny, { profile: 'chat_speed' })).toEqual(['step-3.5-flash']);
    expect(chain(catalog, deny, { profile: 'fast_classify' })).toEqual(['qwen3-8b']);
    expect(chain(catalog, deny, { profile: 'ignored', model: 'step-3.5-flash' })).toEqual(['step-3.5-flash']);
  });

  it('keeps only allowed models, in the chain order', () => {
    const allow = tenant({ mode: 'ALLOW', models: ['qwen3-32b', 'deepseek-v4-flash'] });
    expect(chain(catalog, allow, { profile: 'chat_default' })).toEqual(['deepseek-v4-flash', 'qwen3-32b']);
  });

  it('refuses a named model the tenant may not use, or that is disabled, naming it', () => {
    const e = refusal(() => chain(catalog, tenant({ mode: 'DENY', models: ['glm-5'] }), { profile: 'x', model: 'glm-5' }));
    expect(e).toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'MODEL_NOT_ALLOWED', model: 'glm-5', field: 'model' } });
    const d = refusal(() => chain(seedCatalog(['glm-5']), tenant(), { profile: 'x', model: 'glm-5' }));
    expect(d).toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'MODEL_DISABLED', model: 'glm-5' } });
  });

  it('refuses a profile whose whole chain is out: MODEL_DISABLED only when every model of it is disabled', () => {
    const outside = refusal(() => chain(catalog, tenant({ mode: 'ALLOW', models: ['glm-5'] }), { profile: 'chat_default' }));
    expect(outside).toMatchObject({
      code: 'FORBIDDEN',
      extensions: { reason: 'MODEL_NOT_ALLOWED', profile: 'chat_default', models: ['deepseek-v4-flash', 'hunyuan-turbos', 'qwen3-32b'] },
    });
    const mixed = refusal(() =>
      chain(seedCatalog(['deepseek-v4-flash']), tenant({ mode: 'DENY', models: ['hunyuan-turbos', 'qwen3-32b'] }), { profile: 'chat_default' }),
    );
    expect(mixed.extensions.reason).toBe('MODEL_NOT_ALLOWED');
    const disabled = refusal(() => chain(seedCatalog(['qwen3-8b']), tenant(), { profile: 'fast_classify' }));
    expect(disabled.extensions).toMatchObject({ reason: 'MODEL_DISABLED', models: ['qwen3-8b'] });
  });

  it('still refuses an unknown profile or model as before', () => {
    expect(refusal(() => chain(catalog, tenant(), { profile: 'nope' })).code).toBe('BAD_USER_INPUT');
    expect(refusal(() => chain(catalog, tenant(), { profile: 'x', model: 'gpt-9' })).code).toBe('NOT_FOUND');
  });
});

describe('usableCatalog', () => {
  it('is the catalog itself when nothing is ruled out', () => {
    const c = seedCatalog();
    expect(usableCatalog(c, ALL)).toBe(c);
  });

  it('keeps only the models the tenant may use; profiles and chains stay', () => {
    const c = usableCatalog(seedCatalog(['kimi-k2.5']), { mode: 'DENY', models: ['glm-5'] });
    expect([...c.models.keys()]).not.toContain('kimi-k2.5');
    expect([...c.models.keys()]).not.toContain('glm-5');
    expect(c.models.size).toBe(MODEL_TABLE.length - 2);
    expect(c.profiles.size).toBe(PROFILE_TABLE.length);
    expect([...usableCatalog(seedCatalog(), { mode: 'ALLOW', models: ['glm-5'] }).models.keys()]).toEqual(['glm-5']);
  });
});

describe('refuseSuspended', () => {
  const settings = (suspended: boolean) => ({ suspension: suspended ? { at: new Date(), reason: 'unpaid' } : null }) as TenantSettings;
  const auth = (kind: 'admin' | 'tenant') => ({
    authenticate: async (): Promise<Principal> =>
      kind === 'admin'
        ? { kind: 'admin', scope: 'FULL', actor: ROOT_ACTOR }
        : { kind: 'tenant', tenantId: 't1', keyId: 'k1', keyLimits: { budgetMicros: null, requestsPerMinute: null, tokensPerMinute: null } },
  });

  it("refuses a suspended tenant's key with FORBIDDEN, reason SUSPENDED, and the admin's reason in the message", async () => {
    const guarded = refuseSuspended(auth('tenant'), { get: async () => settings(true) });
    await expect(guarded.authenticate('Bearer x')).rejects.toMatchObject({
      code: 'FORBIDDEN',
      extensions: { reason: 'SUSPENDED' },
      message: expect.stringContaining('(unpaid)'),
    });
  });

  it('lets an active tenant and the admin through, and never loads a tenant for the admin', async () => {
    expect(await refuseSuspended(auth('tenant'), { get: async () => settings(false) }).authenticate('Bearer x')).toMatchObject({ kind: 'tenant' });
    const get = jest.fn();
    expect(await refuseSuspended(auth('admin'), { get }).authenticate('Bearer x')).toMatchObject({ kind: 'admin' });
    expect(get).not.toHaveBeenCalled();
  });
});
