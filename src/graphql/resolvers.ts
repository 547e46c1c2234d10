import type { Resolvers } from '../../generated/graphql';
import { AppError } from '../errors';
import { requireAdmin, requireAdminRead, requireTenant, scopeTenant } from '../tenants/principal';
import { effectiveProfiles } from '../tenants/profiles';
import { usableCatalog } from '../tenants/access';
import { CountScalar, DateTimeScalar, UsdScalar } from './scalars';
import { chatStreamResolver } from './chat-stream';
import { passEventThrough } from './subscription-execution';
import { guardArguments } from './argument-guard';

/** "Left out" versus explicit null, which GraphQL distinguishes and some mutations give different meanings. */
const given = <T>(args: object, name: string, value: T | null | undefined) =>
  Object.prototype.hasOwnProperty.call(args, name) ? { given: true as const, value: value ?? null } : { given: false as const };

/** Thin: authorise, call the use case, shape nothing. Every argument passes the storable-value guard first. */
export const resolvers: Resolvers = guardArguments<Resolvers>({
  Usd: UsdScalar,
  Count: CountScalar,
  DateTime: DateTimeScalar,

  Model: {
    name: (m) => m.name,
    outputUsdPerMillion: (m) => m.outputMicrosPerMillion,
    inputUsdPerMillion: (m) => m.inputMicrosPerMillion,
    cachedInputUsdPerMillion: (m) => m.cachedInputMicrosPerMillion ?? null,
    cacheWriteUsdPerMillion: (m) => m.cacheWriteMicrosPerMillion ?? null,
    ttftMs: (m) => m.ttftUsEastMs,
    tokensPerSecond: (m) => m.tokensPerSecond,
  },

  Tenant: {
    monthlyBudgetUsd: (t) => t.monthlyBudgetMicros,
    spentThisMonthUsd: (t) => t.spentMicros,
    heldUsd: (t) => t.heldMicros,
    remainingThisMonthUsd: (t) => {
      if (t.monthlyBudgetMicros === null) return null;
      const r = t.monthlyBudgetMicros - t.spentMicros - t.heldMicros;
      return r > 0n ? r : 0n;
    },
  },

  // The views hold integer micro-dollars as *Micros; the contract names them *Usd (the Usd scalar formats them).
  Usage: { costUsd: (u) => u.costMicros },
  CostReportRow: { costUsd: (r) => r.costMicros },
  CostReport: { totalUsd: (r) => r.totalMicros },
  CostProjectionRow: { costUsd: (r) => r.costMicros },
  CostProjection: { totalUsd: (p) => p.totalMicros },

  Query: {
    // The admin sees every model (disabled ones too); a tenant key, those its tenant may use.
    models: async (_p, _a, { principal, services }) => {
      const catalog = await services.catalog.get();
      if (principal.kind !== 'tenant') return [...catalog.models.values()];
      return [...usableCatalog(catalog, (await services.tenants.get(principal.tenantId)).modelAccess).models.values()];
    },
    profiles: async (_p, { region }, { principal, services }) => {
      const me = requireTenant(principal, 'profiles');
      const [catalog, tenant] = await Promise.all([services.catalog.get(), services.tenants.get(me.tenantId)]);
      const r = region ?? 'US_EAST';
      return effectiveProfiles(usableCatalog(catalog, tenant.modelAccess), tenant.overrides, r, services.routing).map((p) => ({
        ...p,
        fallbacks: [...p.fallbacks],
        cacheScope: `${me.tenantId}:${r}`,
      }));
    },
    me: (_p, _a, { principal, services }) => services.tenantReader.view(requireTenant(principal, 'me').tenantId),
    tenant: (_p, { id }, { principal, services }) => {
      requireAdminRead(principal, 'tenant');
      return services.tenantReader.view(id);
    },
    tenants: (_p, { first, after }, { principal, services }) => {
      requireAdminRead(principal, 'tenants');
      return services.tenantReader.list(first ?? 100, after ?? null);
    },
    costReport: (_p, { month, groupBy, tenantId }, { principal, services }) =>
      services.reports.costReport(scopeTenant(principal, tenantId, 'costReport'), month, groupBy),
    costProjection: (_p, { monthlyOutputTokens, mix }, { services }) => services.reports.costProjection(monthlyOutputTokens, mix),
    apiKeys: (_p, { tenantId }, { principal, services }) => services.reports.apiKeys(scopeTenant(principal, tenantId, 'apiKeys')),
    request: async (_p, { id }, { principal, services }) => {
      const r = await services.reports.request(id, principal.kind === 'admin' ? null : principal.tenantId);
      if (!r) throw new AppError('NOT_FOUND', `no request with id "${id.slice(0, 64)}"`);
      return r;
    },
    requests: (_p, { tenantId, first, before }, { principal, services }) =>
      services.reports.requests(scopeTenant(principal, tenantId, 'requests'), first ?? 50, before ?? null),
    auditLog: (_p, { tenantId, first, before }, { principal, services }) => {
      requireAdminRead(principal, 'auditLog');
      return services.reports.auditLog(tenantId ?? null, first ?? 50, before ?? null);
    },
    profileOverrides: async (_p, { tenantId }, { principal, services }) => {
      const id = scopeTenant(principal, tenantId, 'profileOverrides');
      const [catalog, t] = await Promise.all([services.catalog.get(), services.tenants.get(id)]);
      return t.overrides.map((o) => ({
        tenantId: id,
        profile: o.profile,
        region: o.scope === 'ALL' ? null : o.scope,
        model: o.model,
        fallbacks: [...(o.fallbacks ?? catalog.fallbacks.get(o.model) ?? [])],
      }));
    },
  },

  Mutation: {
    chat: (_p, { input }, { principal, services, signal }) =>
      services.chat.complete(principal, input, signal).then((r) => ({ ...r, attempts: [...r.attempts] })),
    createTenant: async (_p, { input }, { principal, services }) => {
      const r = await services.admin.createTenant(input, requireAdmin(principal, 'createTenant'));
      return { tenant: await services.tenantReader.view(r.tenantId), apiKey: r.apiKey };
    },
    setTenantBudget: async (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setTenantBudget');
      await services.admin.setTenantBudget(args.tenantId, given(args, 'monthlyBudgetUsd', args.monthlyBudgetUsd), actor);
      return services.tenantReader.view(args.tenantId);
    },
    setTenantLimits: async (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setTenantLimits');
      await services.admin.setTenantLimits(
        args.tenantId,
        given(args, 'requestsPerMinute', args.requestsPerMinute),
        given(args, 'tokensPerMinute', args.tokensPerMinute),
        actor,
      );
      return services.tenantReader.view(args.tenantId);
    },
    setTenantConcurrency: async (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setTenantConcurrency');
      await services.admin.setTenantConcurrency(args.tenantId, args.maxConcurrentRequests ?? null, actor);
      return services.tenantReader.view(args.tenantId);
    },
    setProfileOverride: async (_p, args, { principal, services }) => {
      const o = await services.admin.setProfileOverride(args, requireAdmin(principal, 'setProfileOverride'));
      return { ...o, fallbacks: [...o.fallbacks] };
    },
    removeProfileOverride: (_p, { tenantId, profile, region }, { principal, services }) => {
      const actor = requireAdmin(principal, 'removeProfileOverride');
      return services.admin.removeProfileOverride(tenantId, profile, region, actor);
    },
    createApiKey: (_p, { tenantId }, { principal, services }) => {
      return services.admin.createApiKey(tenantId, requireAdmin(principal, 'createApiKey'));
    },
    revokeApiKey: (_p, { id }, { principal, services }) => {
      return services.admin.revokeApiKey(id, requireAdmin(principal, 'revokeApiKey'));
    },
    setModelPrice: (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setModelPrice');
      return services.prices.setModelPrice(args.model, args.outputUsdPerMillion, given(args, 'inputUsdPerMillion', args.inputUsdPerMillion), actor);
    },
    setModelCachePrices: (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setModelCachePrices');
      return services.prices.setCachePrices(
        args.model,
        given(args, 'cachedInputUsdPerMillion', args.cachedInputUsdPerMillion),
        given(args, 'cacheWriteUsdPerMillion', args.cacheWriteUsdPerMillion),
        actor,
      );
    },
  },

  Subscription: {
    chatStream: {
      subscribe: chatStreamResolver,
      resolve: passEventThrough,
    },
  },
});
