import { formatUsd } from '../accounting/money';
import type { Catalog, ModelInfo, OverrideInfo, Region } from '../catalog/types';
import { buildModelPlan, type RoutingOptions } from '../routing';
import { effectiveProfiles } from '../tenants/profiles';

/** Prices of what an entry routes to first, as exact Usd strings per million tokens (input null: not priced). */
interface Pricing {
  readonly input_usd_per_million: string | null;
  readonly output_usd_per_million: string;
}

export interface OpenAIModelEntry {
  readonly id: string;
  readonly object: 'model';
  /** The catalog keeps no creation date: 0, as OpenAI-compatible servers without one answer. */
  readonly created: number;
  readonly owned_by: string;
  /** Extra: a profile (routed with this tenant's overrides) or a model (with its default fallbacks). */
  readonly gateway: {
    readonly kind: 'profile' | 'model';
    readonly model: string;
    readonly fallbacks: readonly string[];
    readonly default_max_tokens: number;
    readonly max_tokens_cap: number;
    readonly pricing: Pricing;
  };
}

const pricing = (m: ModelInfo): Pricing | null =>
  m.outputMicrosPerMillion === null
    ? null
    : {
        input_usd_per_million: m.inputMicrosPerMillion === null ? null : formatUsd(m.inputMicrosPerMillion),
        output_usd_per_million: formatUsd(m.outputMicrosPerMillion),
      };

/**
 * What this tenant may call as `model`: its effective profiles for the region, then every model id. Entries whose
 * first model has no output price are left out: a request naming them is refused (model_not_priced). Pure.
 */
export function listModels(catalog: Catalog, overrides: readonly OverrideInfo[], region: Region, routing: RoutingOptions): OpenAIModelEntry[] {
  const out: OpenAIModelEntry[] = [];
  for (const p of effectiveProfiles(catalog, overrides, region, routing)) {
    const head = catalog.models.get(p.model);
    const price = head && pricing(head);
    if (!head || !price) continue;
    out.push({
      id: p.name,
      object: 'model',
      created: 0,
      owned_by: 'gateway',
      gateway: {
        kind: 'profile',
        model: head.id,
        fallbacks: p.fallbacks,
        default_max_tokens: p.defaultMaxTokens,
        max_tokens_cap: p.maxTokensCap,
        pricing: price,
      },
    });
  }
  // Without profiles no model has token limits to borrow (buildModelPlan refuses): nothing to list by id.
  if (catalog.profiles.size === 0) return out;
  for (const m of catalog.models.values()) {
    const price = pricing(m);
    // A profile's name wins over a model id that equals it: such a model is reachable only through the profile.
    if (!price || catalog.profiles.has(m.id)) continue;
    const plan = buildModelPlan(catalog, m.id, region, routing);
    out.push({
      id: m.id,
      object: 'model',
      created: 0,
      owned_by: m.provider,
      gateway: {
        kind: 'model',
        model: m.id,
        fallbacks: plan.chain.slice(1).map((c) => c.model.id),
        default_max_tokens: plan.profile.defaultMaxTokens,
        max_tokens_cap: plan.profile.maxTokensCap,
        pricing: price,
      },
    });
  }
  return out;
}
