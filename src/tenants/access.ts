import { AppError } from '../errors';
import type { Catalog, ModelInfo, Region } from '../catalog/types';
import { buildModelPlan, buildPlan, type Plan, type RoutingOptions } from '../routing';
import type { Authenticator } from './authenticate';
import type { ModelAccess, Suspension, TenantSettings, TenantStore } from './tenant-store';

/**
 * What a tenant may do, checked where requests enter: suspension at authentication, model access when a request is
 * planned. Both read the tenant's settings from the per-epoch cache, so an admin change applies to the next request
 * on every instance and a check costs no statement of its own.
 */

export const suspendedError = (s: Suspension): AppError =>
  new AppError('FORBIDDEN', `this tenant is suspended${s.reason ? ` (${s.reason})` : ''}; its keys work again once an admin resumes it`, {
    reason: 'SUSPENDED',
  });

/**
 * Refuses every key of a suspended tenant (FORBIDDEN, reason SUSPENDED) on every transport, before any operation
 * runs: nothing is admitted or written. The tenant's settings come from the same cache the chat use case reads.
 */
export function refuseSuspended(auth: Authenticator, tenants: Pick<TenantStore, 'get'>): Authenticator {
  return {
    async authenticate(authorization, clientAddress) {
      const principal = await auth.authenticate(authorization, clientAddress);
      if (principal.kind !== 'tenant') return principal;
      const { suspension } = await tenants.get(principal.tenantId);
      if (suspension) throw suspendedError(suspension);
      return principal;
    },
  };
}

/** Why a model is out of a tenant's reach, or null when the tenant may use it. */
function refusal(model: ModelInfo, access: ModelAccess): 'MODEL_DISABLED' | 'MODEL_NOT_ALLOWED' | null {
  if (model.enabled === false) return 'MODEL_DISABLED';
  if (access.mode === 'ALLOW' && !access.models.includes(model.id)) return 'MODEL_NOT_ALLOWED';
  if (access.mode === 'DENY' && access.models.includes(model.id)) return 'MODEL_NOT_ALLOWED';
  return null;
}

/** The catalog as the tenant may use it: only its usable models (for listings: /v1/models, profiles, models). */
export function usableCatalog(catalog: Catalog, access: ModelAccess): Catalog {
  const models = [...catalog.models.values()];
  if (models.every((m) => refusal(m, access) === null)) return catalog;
  return { ...catalog, models: new Map(models.filter((m) => refusal(m, access) === null).map((m) => [m.id, m])) };
}

const MESSAGES = {
  MODEL_DISABLED: 'the admin has disabled it for every tenant',
  MODEL_NOT_ALLOWED: "this tenant's model access list leaves it out",
} as const;

/**
 * The plan of one chat request with the tenant's model access applied: the models it may not use are left out of
 * the chain. Naming such a model, or a profile whose whole chain is left out, is FORBIDDEN with extensions.reason
 * MODEL_DISABLED (every one of them disabled by the admin) or MODEL_NOT_ALLOWED, naming the models.
 */
export function planFor(
  catalog: Catalog,
  tenant: Pick<TenantSettings, 'overrides' | 'modelAccess'>,
  input: { profile: string; model?: string | null },
  region: Region,
  routing: RoutingOptions,
): Plan {
  const access = tenant.modelAccess;
  const named = input.model ? catalog.models.get(input.model) : undefined;
  const namedRefusal = named ? refusal(named, access) : null;
  if (named && namedRefusal) {
    throw new AppError('FORBIDDEN', `model: ${named.id} may not be used: ${MESSAGES[namedRefusal]}`, { reason: namedRefusal, field: 'model', model: named.id });
  }
  const plan = input.model ? buildModelPlan(catalog, input.model, region, routing) : buildPlan(catalog, tenant.overrides, input.profile, region, routing);
  const chain = plan.chain.filter((m) => refusal(m.model, access) === null);
  if (chain.length === plan.chain.length) return plan;
  if (chain.length === 0) {
    const ids = plan.chain.map((m) => m.model.id);
    const reason = plan.chain.every((m) => refusal(m.model, access) === 'MODEL_DISABLED') ? 'MODEL_DISABLED' : 'MODEL_NOT_ALLOWED';
    const why = reason === 'MODEL_DISABLED' ? 'the admin has disabled them for every tenant' : "this tenant's model access list (or the admin) rules them out";
    throw new AppError('FORBIDDEN', `profile ${plan.profile.name}: none of its models (${ids.join(', ')}) may be used: ${why}`, {
      reason,
      field: 'profile',
      profile: plan.profile.name,
      models: ids,
    });
  }
  return { ...plan, chain };
}
