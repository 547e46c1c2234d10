import { AppError, rethrowUnavailable } from '../../errors';
import type { CatalogStore } from '../../catalog/catalog-store';
import type { TenantStore, TenantSettings } from '../../tenants/tenant-store';
import { requireTenant, type KeyLimits, type Principal } from '../../tenants/principal';
import type { Plan, RoutingOptions } from '../../routing';
import { planFor } from '../../tenants/access';
import type { PriceSnapshot } from '../../accounting/ledger';
import { unitPricesOf, type UnitPrices } from '../../accounting/pricing';
import { checkShape, resolveMaxTokens, type ChatInput } from '../chat-input';

export interface ValidateDeps {
  readonly catalog: CatalogStore;
  readonly tenants: TenantStore;
  readonly routing: RoutingOptions;
  readonly maxMessageBytes: number;
}

/** A request that passed every check that needs no gate. */
export interface Validated {
  readonly tenant: TenantSettings;
  readonly keyId: string;
  /** The key's own limits, checked with the tenant's (and again when a fallback grows the hold). */
  readonly keyLimits: KeyLimits;
  readonly plan: Plan;
  readonly maxTokens: number;
  readonly prices: PriceSnapshot;
  readonly messageBytes: number;
}

/**
 * Step 1 of a chat request: every check that needs no gate — the caller is a tenant, the input's shape and caps,
 * the plan (profile or model id, the tenant's overrides and model access), the price snapshot. A bad request fails
 * here and touches nothing.
 */
export async function validate(deps: ValidateDeps, principal: Principal, input: ChatInput, mode: 'collect' | 'stream'): Promise<Validated> {
  const who = requireTenant(principal, mode === 'stream' ? 'chatStream' : 'chat');
  const { messageBytes } = checkShape(input, { mode, maxMessageBytes: deps.maxMessageBytes });
  const [catalog, tenant] = await Promise.all([deps.catalog.get(), deps.tenants.get(who.tenantId)]).catch(rethrowUnavailable('Postgres'));
  const region = input.region ?? 'US_EAST';
  const planned = planFor(catalog, tenant, input, region, deps.routing);
  const maxTokens = resolveMaxTokens(input, planned.profile);
  const primary = planned.chain[0];
  if (!primary || primary.model.outputMicrosPerMillion === null) {
    const id = primary?.model.id ?? '(none)';
    throw new AppError('UNPRICED_MODEL', `model ${id} of profile ${input.profile} has no output price yet; an admin must set one with setModelPrice`, {
      model: id,
    });
  }
  // An unpriced fallback would be recorded at $0: leave it out of the chain instead.
  const plan: Plan = { ...planned, chain: planned.chain.filter((m) => m.model.outputMicrosPerMillion !== null) };
  const prices: Record<string, UnitPrices> = {};
  for (const m of plan.chain) prices[m.model.id] = unitPricesOf(m.model);
  return { tenant, keyId: who.keyId, keyLimits: who.keyLimits, plan, maxTokens, prices, messageBytes };
}
