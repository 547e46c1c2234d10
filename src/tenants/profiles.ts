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

/** The caller's effective profiles for a region: the same plan the router would use, so the two never disagree. */
export function effectiveProfiles(catalog: Catalog, overrides: readonly OverrideInfo[], region: Region, routing: RoutingOptions): ProfileView[] {
  return [...catalog.profiles.values()].map((p) => {
    const plan = buildPlan(catalog, overrides, p.name, region, routing);
    const [first, ...rest] = plan.chain;
    return {
      name: p.name,
      model: first?.model.id ?? p.model,
      fallbacks: rest.map((m) => m.model.id),
      overridden: overrides.some((o) => o.profile === p.name && (o.scope === region || o.scope === 'ALL')),
      defaultMaxTokens: p.defaultMaxTokens,
      maxTokensCap: p.maxTokensCap,
    };
  });
}
