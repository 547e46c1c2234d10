import { AppError, badInput } from '../errors';
import type { Logger } from '../infra/logger';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import { makeAdminCommit } from './admin-commit';
import { parseUsd, type Micros } from '../accounting/money';
import { REGIONS, type Region } from '../catalog/model-table';
import { loadCatalog } from '../catalog/catalog-store';
import { generateApiKey } from './api-keys';
import { audit } from './audit';
import { isUuid } from './tenant-store';
import { ROOT_ACTOR, type Actor } from './principal';

export interface OverrideView {
  readonly tenantId: string;
  readonly profile: string;
  readonly region: Region | null;
  readonly model: string;
  readonly fallbacks: readonly string[];
}

/** Argument present-or-absent, as GraphQL distinguishes "left out" from an explicit null. */
export type Maybe<T> = { readonly given: false } | { readonly given: true; readonly value: T | null };

/** Every change takes, last, who makes it (the audit log names it); left out: the root admin key (CLI, tests). */
export interface AdminService {
  createTenant(
    i: { name: string; monthlyBudgetUsd?: string | null; requestsPerMinute?: number | null; tokensPerMinute?: number | null },
    actor?: Actor,
  ): Promise<{ tenantId: string; apiKey: { id: string; key: string } }>;
  setTenantBudget(tenantId: string, budget: Maybe<string>, actor?: Actor): Promise<void>;
  setTenantLimits(tenantId: string, rpm: Maybe<number>, tpm: Maybe<number>, actor?: Actor): Promise<void>;
  /** null removes the cap. */
  setTenantConcurrency(tenantId: string, max: number | null, actor?: Actor): Promise<void>;
  setProfileOverride(
    i: { tenantId: string; profile: string; model: string; fallbacks?: readonly string[] | null; region?: Region | null },
    actor?: Actor,
  ): Promise<OverrideView>;
  removeProfileOverride(tenantId: string, profile: string, region?: Region | null, actor?: Actor): Promise<boolean>;
  createApiKey(tenantId: string, actor?: Actor): Promise<{ id: string; key: string }>;
  revokeApiKey(id: string, actor?: Actor): Promise<boolean>;
}

type OverrideScope = 'ALL' | Region;
const NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,99}$/u;

export function checkLimit(field: string, v: number | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isInteger(v) || v < 1) throw badInput(field, `expected a whole number of at least 1 (leave it out or null for no limit), got ${v}`);
  return v;
}

const notFoundTenant = (id: string) => new AppError('NOT_FOUND', `no tenant with id "${id.slice(0, 64)}"`);

/** The tenant row an admin change is about (read inside its transaction); NOT_FOUND for an unknown or malformed id. */
export async function tenantOrThrow(tx: Pick<Db, 'tenant'>, tenantId: string) {
  const t = isUuid(tenantId) ? await tx.tenant.findUnique({ where: { id: tenantId } }) : null;
  if (!t) throw notFoundTenant(tenantId);
  return t;
}

type Commit = ReturnType<typeof makeAdminCommit>;
type TenantSettingsAdmin = Pick<AdminService, 'createTenant' | 'setTenantBudget' | 'setTenantLimits' | 'setTenantConcurrency'>;
type OverrideAdmin = Pick<AdminService, 'setProfileOverride' | 'removeProfileOverride'>;
type ApiKeyAdmin = Pick<AdminService, 'createApiKey' | 'revokeApiKey'>;

/**
 * The admin's changes. Each validates everything before writing, then writes the change and its audit record in one
 * transaction that announces the change on the epoch before it commits (see infra/epoch.ts): a change Redis cannot
 * announce is rolled back and answered SERVICE_UNAVAILABLE, so none is ever committed and unseen by an instance.
 */
export function makeAdminService(deps: { db: Db; epoch: Epoch; logger?: Logger }): AdminService {
  const commit = makeAdminCommit(deps);
  return { ...tenantSettingsAdmin(commit), ...overrideAdmin(deps.db, commit), ...apiKeyAdmin(commit) };
}

/** A tenant's creation and its budget and limits. */
function tenantSettingsAdmin(commit: Commit): TenantSettingsAdmin {
  return {
    async createTenant(i, actor = ROOT_ACTOR) {
      const name = i.name.trim();
      if (!NAME.test(name)) throw badInput('name', 'expected 1 to 100 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit');
      const budget: Micros | null = i.monthlyBudgetUsd === undefined || i.monthlyBudgetUsd === null ? null : parseUsd(i.monthlyBudgetUsd, 'monthlyBudgetUsd');
      const rpm = checkLimit('requestsPerMinute', i.requestsPerMinute);
      const tpm = checkLimit('tokensPerMinute', i.tokensPerMinute);
      const k = generateApiKey();
      try {
        return await commit(async (tx) => {
          const t = await tx.tenant.create({ data: { name, monthlyBudgetMicros: budget, requestsPerMinute: rpm, tokensPerMinute: tpm } });
          const key = await tx.apiKey.create({ data: { tenantId: t.id, hash: k.hash, prefix: k.prefix } });
          await audit(tx, actor, {
            action: 'createTenant',
            targetType: 'tenant',
            targetId: t.id,
            tenantId: t.id,
            newValue: { name, monthlyBudgetMicros: budget, requestsPerMinute: rpm, tokensPerMinute: tpm },
          });
          await audit(tx, actor, { action: 'createApiKey', targetType: 'apiKey', targetId: key.id, tenantId: t.id, newValue: { prefix: k.prefix } });
          return { tenantId: t.id, apiKey: { id: key.id, key: k.key } };
        });
      } catch (e) {
        if ((e as { code?: string }).code === 'P2002') throw new AppError('CONFLICT', `a tenant named "${name}" already exists`, { field: 'name' });
        throw e;
      }
    },

    async setTenantBudget(tenantId, budget, actor = ROOT_ACTOR) {
      if (!budget.given) throw badInput('monthlyBudgetUsd', 'is required: give an amount such as "25", or null to remove the budget');
      const micros = budget.value === null ? null : parseUsd(budget.value, 'monthlyBudgetUsd');
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        await tx.tenant.update({ where: { id: t.id }, data: { monthlyBudgetMicros: micros } });
        await audit(tx, actor, {
          action: 'setTenantBudget',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { monthlyBudgetMicros: t.monthlyBudgetMicros },
          newValue: { monthlyBudgetMicros: micros },
        });
      });
    },

    async setTenantLimits(tenantId, rpm, tpm, actor = ROOT_ACTOR) {
      const data: { requestsPerMinute?: number | null; tokensPerMinute?: number | null } = {};
      if (rpm.given) data.requestsPerMinute = checkLimit('requestsPerMinute', rpm.value);
      if (tpm.given) data.tokensPerMinute = checkLimit('tokensPerMinute', tpm.value);
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        await tx.tenant.update({ where: { id: t.id }, data });
        await audit(tx, actor, {
          action: 'setTenantLimits',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { requestsPerMinute: t.requestsPerMinute, tokensPerMinute: t.tokensPerMinute },
          newValue: { requestsPerMinute: data.requestsPerMinute ?? t.requestsPerMinute, tokensPerMinute: data.tokensPerMinute ?? t.tokensPerMinute, ...data },
        });
      });
    },

    async setTenantConcurrency(tenantId, max, actor = ROOT_ACTOR) {
      const maxConcurrentRequests = checkLimit('maxConcurrentRequests', max);
      await commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        await tx.tenant.update({ where: { id: t.id }, data: { maxConcurrentRequests } });
        await audit(tx, actor, {
          action: 'setTenantConcurrency',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { maxConcurrentRequests: t.maxConcurrentRequests },
          newValue: { maxConcurrentRequests },
        });
      });
    },
  };
}

/** Per-tenant profile overrides: validated against the catalog before the transaction. */
function overrideAdmin(db: Db, commit: Commit): OverrideAdmin {
  return {
    async setProfileOverride(i, actor = ROOT_ACTOR) {
      const catalog = await loadCatalog(db);
      if (!catalog.profiles.has(i.profile)) {
        throw badInput('profile', `unknown profile "${i.profile}"; valid profiles: ${[...catalog.profiles.keys()].join(', ')}`);
      }
      const known = (m: string) => catalog.models.has(m);
      if (!known(i.model)) throw badInput('model', `unknown model "${i.model}"; known models: ${[...catalog.models.keys()].join(', ')}`);
      const fallbacks = i.fallbacks ?? null;
      if (fallbacks) {
        const bad = fallbacks.find((m) => !known(m));
        if (bad !== undefined) throw badInput('fallbacks', `unknown model "${bad}"`);
        if (fallbacks.length > 10) throw badInput('fallbacks', 'at most 10 fallbacks');
        if (new Set([i.model, ...fallbacks]).size !== fallbacks.length + 1) throw badInput('fallbacks', 'a model may appear only once in a chain');
      }
      if (i.region !== undefined && i.region !== null && !REGIONS.includes(i.region)) throw badInput('region', `expected one of ${REGIONS.join(', ')}`);
      const scope: OverrideScope = i.region ?? 'ALL';
      return commit(async (tx) => {
        const t = await tenantOrThrow(tx, i.tenantId);
        const where = { tenantId_profile_scope: { tenantId: t.id, profile: i.profile, scope } };
        const old = await tx.profileOverride.findUnique({ where });
        const data = { modelId: i.model, replaceFallbacks: fallbacks !== null, fallbacks: fallbacks ? [...fallbacks] : [] };
        await tx.profileOverride.upsert({ where, create: { tenantId: t.id, profile: i.profile, scope, ...data }, update: data });
        await audit(tx, actor, {
          action: 'setProfileOverride',
          targetType: 'profileOverride',
          targetId: `${t.id}/${i.profile}/${scope}`,
          tenantId: t.id,
          oldValue: old && { model: old.modelId, fallbacks: old.replaceFallbacks ? old.fallbacks : null },
          newValue: { model: i.model, fallbacks },
        });
        return {
          tenantId: t.id,
          profile: i.profile,
          region: i.region ?? null,
          model: i.model,
          fallbacks: fallbacks ?? catalog.fallbacks.get(i.model) ?? [],
        };
      });
    },

    async removeProfileOverride(tenantId, profile, region, actor = ROOT_ACTOR) {
      const catalog = await loadCatalog(db);
      // A typo must not pass for "there was nothing to remove".
      if (!catalog.profiles.has(profile))
        throw badInput('profile', `unknown profile "${profile.slice(0, 64)}"; valid profiles: ${[...catalog.profiles.keys()].join(', ')}`);
      const scope: OverrideScope = region ?? 'ALL';
      return commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        const old = await tx.profileOverride.findUnique({ where: { tenantId_profile_scope: { tenantId: t.id, profile, scope } } });
        if (!old) return false;
        await tx.profileOverride.delete({ where: { id: old.id } });
        await audit(tx, actor, {
          action: 'removeProfileOverride',
          targetType: 'profileOverride',
          targetId: `${t.id}/${profile}/${scope}`,
          tenantId: t.id,
          oldValue: { model: old.modelId, fallbacks: old.replaceFallbacks ? old.fallbacks : null },
        });
        return true;
      });
    },
  };
}

/** A tenant's API keys: created with a secret shown once, revoked for good. */
function apiKeyAdmin(commit: Commit): ApiKeyAdmin {
  return {
    async createApiKey(tenantId, actor = ROOT_ACTOR) {
      const k = generateApiKey();
      return commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        const key = await tx.apiKey.create({ data: { tenantId: t.id, hash: k.hash, prefix: k.prefix } });
        await audit(tx, actor, { action: 'createApiKey', targetType: 'apiKey', targetId: key.id, tenantId: t.id, newValue: { prefix: k.prefix } });
        return { id: key.id, key: k.key };
      });
    },

    async revokeApiKey(id, actor = ROOT_ACTOR) {
      return commit(async (tx) => {
        const key = isUuid(id) ? await tx.apiKey.findUnique({ where: { id } }) : null;
        if (!key) throw new AppError('NOT_FOUND', `no API key with id "${id.slice(0, 64)}"`);
        if (key.revokedAt) return false;
        const revokedAt = new Date();
        await tx.apiKey.update({ where: { id }, data: { revokedAt } });
        await audit(tx, actor, {
          action: 'revokeApiKey',
          targetType: 'apiKey',
          targetId: id,
          tenantId: key.tenantId,
          oldValue: { revokedAt: null },
          newValue: { revokedAt },
        });
        return true;
      });
    },
  };
}
