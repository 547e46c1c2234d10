import type { Resolvers } from '../../generated/graphql';
import type { ProfileView } from '../tenants/profiles';
import type { GraphQLContext } from './context';
import { requireAdminRead, requireTenant, scopeTenant } from '../tenants/principal';

/** A Profile as the profiles query returns it: the view plus "tenant:region", which its cache id needs. */
export type ProfileParent = ProfileView & { readonly cacheScope?: string };

/** The caller's tenant as it is now: read only when a client selects `tenant`, so others pay nothing. */
const tenantAfter = (ctx: GraphQLContext) => ctx.services.tenantReader.view(requireTenant(ctx.principal, 'chat').tenantId);

/**
 * What gateway.graphql adds for normalising client caches: ids (named for what they are, alongside the contract's
 * own fields), the tenant after a chat (so `me` updates in the cache without a refetch), and Relay connections.
 */
export const frontendResolvers: Resolvers = {
  ChatResult: {
    id: (r) => r.requestId,
    tenant: (_r, _a, ctx) => tenantAfter(ctx),
  },
  ChatStreamEvent: {
    id: (e) => e.requestId,
    // Only the done event: it is sent after the request settled, so the spend includes it.
    tenant: (e, _a, ctx) => (e.done ? tenantAfter(ctx) : null),
  },
  RequestRecord: { id: (r) => r.requestId },
  Profile: { id: (p) => `${p.cacheScope ?? 'default'}:${p.name}` },
  CostReport: { id: (r) => `${r.tenantId}:${r.month}:${r.groupBy}` },
  ProfileOverride: { id: (o) => `${o.tenantId}:${o.profile}:${o.region ?? 'ALL'}` },

  Query: {
    requestsConnection: (_p, { tenantId, first, after }, { principal, services }) =>
      services.pages.requests(scopeTenant(principal, tenantId, 'requestsConnection'), first ?? 50, after ?? null),
    auditLogConnection: (_p, { tenantId, first, after }, { principal, services }) => {
      requireAdminRead(principal, 'auditLogConnection');
      return services.pages.auditLog(tenantId ?? null, first ?? 50, after ?? null);
    },
    tenantsConnection: async (_p, { first, after }, { principal, services }) => {
      requireAdminRead(principal, 'tenantsConnection');
      const p = await services.pages.tenants(first ?? 100, after ?? null);
      const views = await Promise.all(p.edges.map((e) => services.tenantReader.view(e.node)));
      return { edges: p.edges.map((e, i) => ({ cursor: e.cursor, node: views[i]! })), pageInfo: p.pageInfo };
    },
  },
};
