import type { Resolvers } from '../../generated/graphql';
import type { GraphQLContext } from './context';
import { requireAdmin, requireAdminRead, scopeTenant } from '../tenants/principal';
import { guardArguments } from './argument-guard';
import type { AlertSettings } from '../alerts/alert-settings';

/** "Left out" versus explicit null: for setTenantAlerts, null restores a default and leaving out keeps the value. */
const given = <T>(args: object, name: string, value: T | null | undefined) =>
  Object.prototype.hasOwnProperty.call(args, name) ? { given: true as const, value: value ?? null } : { given: false as const };

/** The tenant an admin read is narrowed to (null: all); a tenant key reads only its own. */
const tenantFilter = (ctx: GraphQLContext, tenantId: string | null | undefined, what: string): string | null =>
  ctx.principal.kind === 'admin' ? (tenantId ?? null) : scopeTenant(ctx.principal, tenantId, what);

/** One read of a tenant's alert settings per Tenant object, however many of its alert fields are selected. */
const settingsRead = new WeakMap<object, Promise<AlertSettings>>();
function settingsOf(t: { id: string }, ctx: GraphQLContext): Promise<AlertSettings> {
  let p = settingsRead.get(t);
  if (!p) settingsRead.set(t, (p = ctx.services.alerts.settings.get(t.id)));
  return p;
}

/** What alerts.graphql adds: alert settings on Tenant, their mutations, the logs and the budgetEvents subscription. */
export const alertResolvers: Resolvers = guardArguments<Resolvers>({
  Tenant: {
    alertThresholds: async (t, _a, ctx) => [...(await settingsOf(t, ctx)).thresholds],
    alertWebhookUrl: async (t, _a, ctx) => (await settingsOf(t, ctx)).webhookUrl,
  },
  BudgetEvent: {
    spentUsd: (e) => e.spentMicros,
    budgetUsd: (e) => e.budgetMicros,
  },
  BudgetAlert: { id: (a) => a.event.id },

  Query: {
    budgetAlertsConnection: (_p, { tenantId, first, after }, ctx) =>
      ctx.services.alerts.pages.alerts(tenantFilter(ctx, tenantId, 'budgetAlertsConnection'), first ?? 50, after ?? null),
    alertDeliveriesConnection: (_p, { tenantId, first, after }, { principal, services }) => {
      requireAdminRead(principal, 'alertDeliveriesConnection');
      return services.alerts.pages.deliveries(tenantId ?? null, first ?? 50, after ?? null);
    },
  },

  Mutation: {
    setTenantAlerts: async (_p, args, { principal, services }) => {
      requireAdmin(principal, 'setTenantAlerts');
      const r = await services.alerts.settings.set(args.tenantId, given(args, 'thresholds', args.thresholds), given(args, 'webhookUrl', args.webhookUrl));
      return { tenant: await services.tenantReader.view(args.tenantId), webhookSecret: r.webhookSecret };
    },
    rotateAlertWebhookSecret: async (_p, { tenantId }, { principal, services }) => {
      requireAdmin(principal, 'rotateAlertWebhookSecret');
      const r = await services.alerts.settings.rotateSecret(tenantId);
      return { tenant: await services.tenantReader.view(tenantId), webhookSecret: r.webhookSecret };
    },
  },

  Subscription: {
    budgetEvents: {
      subscribe: (_p, { tenantId }, ctx) => {
        const only = tenantFilter(ctx, tenantId, 'budgetEvents');
        return ctx.services.alerts.events.listen((e) => only === null || e.tenantId === only, ctx.signal);
      },
      resolve: (e: unknown) => e as never,
    },
  },
});
