import type { Resolvers } from '../../generated/graphql';
import { requireAdmin } from '../tenants/principal';
import { guardArguments } from './argument-guard';

/** Suspension, model access lists and the global model switch (gateway.graphql, issue 16). Thin, like resolvers.ts. */
export const accessResolvers: Resolvers = guardArguments<Resolvers>({
  Tenant: {
    suspendedAt: (t) => t.suspension?.at ?? null,
    suspensionReason: (t) => t.suspension?.reason ?? null,
    modelAccess: (t) => ({ mode: t.modelAccess.mode, models: [...t.modelAccess.models] }),
  },
  Model: {
    enabled: (m) => m.enabled !== false,
  },
  Mutation: {
    suspendTenant: async (_p, { tenantId, reason }, { principal, services }) => {
      const actor = requireAdmin(principal, 'suspendTenant');
      await services.access.suspendTenant(tenantId, reason ?? null, actor);
      return services.tenantReader.view(tenantId);
    },
    resumeTenant: async (_p, { tenantId }, { principal, services }) => {
      const actor = requireAdmin(principal, 'resumeTenant');
      await services.access.resumeTenant(tenantId, actor);
      return services.tenantReader.view(tenantId);
    },
    setTenantModelAccess: async (_p, { tenantId, mode, models }, { principal, services }) => {
      const actor = requireAdmin(principal, 'setTenantModelAccess');
      await services.access.setModelAccess(tenantId, mode, models ?? null, actor);
      return services.tenantReader.view(tenantId);
    },
    setModelEnabled: (_p, { model, enabled }, { principal, services }) => {
      return services.modelSwitch.setEnabled(model, enabled, requireAdmin(principal, 'setModelEnabled'));
    },
  },
});
