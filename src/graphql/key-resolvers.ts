import type { Resolvers } from '../../generated/graphql';
import { requireAdmin, requireAdminRead, requireRootAdmin } from '../tenants/principal';
import { guardArguments } from './argument-guard';

/** "Left out" versus explicit null (null removes a key's own limit; left out keeps it). */
const given = <T>(args: object, name: string, value: T | null | undefined) =>
  Object.prototype.hasOwnProperty.call(args, name) ? { given: true as const, value: value ?? null } : { given: false as const };

/** API keys' names, limits, spend and rotation, and the named admin keys (gateway.graphql, issue 16). */
export const keyResolvers: Resolvers = guardArguments<Resolvers>({
  ApiKeyInfo: {
    monthlyBudgetUsd: (k) => k.monthlyBudgetMicros,
    spentThisMonthUsd: (k) => k.spentThisMonthMicros,
  },

  Query: {
    adminKeys: (_p, _a, { principal, services }) => {
      requireAdminRead(principal, 'adminKeys');
      return services.keyAdmin.listAdminKeys();
    },
  },

  Mutation: {
    setApiKeyName: async (_p, { id, name }, { principal, services }) => {
      await services.keyAdmin.setApiKeyName(id, name ?? null, requireAdmin(principal, 'setApiKeyName'));
      return services.reports.apiKey(id);
    },
    setApiKeyLimits: async (_p, args, { principal, services }) => {
      const actor = requireAdmin(principal, 'setApiKeyLimits');
      await services.keyAdmin.setApiKeyLimits(
        args.id,
        given(args, 'monthlyBudgetUsd', args.monthlyBudgetUsd),
        given(args, 'requestsPerMinute', args.requestsPerMinute),
        given(args, 'tokensPerMinute', args.tokensPerMinute),
        actor,
      );
      return services.reports.apiKey(args.id);
    },
    rotateApiKey: (_p, { id, graceSeconds }, { principal, services }) =>
      services.keyAdmin.rotateApiKey(id, graceSeconds, requireAdmin(principal, 'rotateApiKey')),
    createAdminKey: (_p, { name, scope }, { principal, services }) =>
      services.keyAdmin.createAdminKey(name, scope, requireRootAdmin(principal, 'createAdminKey')),
    revokeAdminKey: (_p, { id }, { principal, services }) => services.keyAdmin.revokeAdminKey(id, requireRootAdmin(principal, 'revokeAdminKey')),
    rotateAdminKey: (_p, { id, graceSeconds }, { principal, services }) =>
      services.keyAdmin.rotateAdminKey(id, graceSeconds, requireRootAdmin(principal, 'rotateAdminKey')),
  },
});
