import { buildPlan, type RoutingOptions } from '../routing';
import type { Catalog, OverrideInfo, Region } from '../catalog/types';

export interface ProfileView {
  readonly name: string;
  readonly model: string;
  readonly fallbacks: readonly string[];
  readonly overridden: boolean;
  readonly defaultMaxTokens: number;
  readonly maxTokensCap: number;
}

/**
 * The caller's effective profiles for a region: the same plan the router would use, so the two never disagree. A
 * profile none of whose models is in `catalog` (the tenant's usable one) routes nowhere and is left out.
 */
export function effectiveProfiles(catalog: Catalog, overrides: readonly OverrideInfo[], region: Region, routing: RoutingOptions): ProfileView[] {
  return [...catalog.profiles.values()].flatMap((p) => {
    const plan = buildPlan(catalog, overrides, p.name, region, routing);
    const [first, ...rest] = plan.chain;
    if (!first) return [];
    return {
      name: p.name,
      model: first.model.id,
      fallbacks: rest.map((m) => m.model.id),
      overridden: overrides.some((o) => o.profile === p.name && (o.scope === region || o.scope === 'ALL')),
      defaultMaxTokens: p.defaultMaxTokens,
      maxTokensCap: p.maxTokensCap,
    };
  });
}
