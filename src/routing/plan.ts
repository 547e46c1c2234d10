import { ttftFor } from '../catalog/model-table';
import type { Catalog, ModelInfo, OverrideInfo, ProfileInfo, Region } from '../catalog/types';
import { AppError } from '../errors';

/** Routing knobs; config.ts owns the values, these are the defaults. */
export interface RoutingOptions {
  /** No first-token deadline is shorter than this (the article's 800 ms per attempt). */
  readonly firstTokenFloorMs: number;
  /** First-token deadline = this multiple of the model's measured TTFT for the region, at least the floor. */
  readonly ttftMultiple: number;
  /** Longest wait between chunks once content has started. */
  readonly idleTimeoutMs: number;
  /** Longest a whole request may take, every attempt included. */
  readonly totalTimeoutMs: number;
}

export const DEFAULT_ROUTING_OPTIONS: RoutingOptions = Object.freeze({
  firstTokenFloorMs: 800,
  ttftMultiple: 2,
  idleTimeoutMs: 10_000,
  totalTimeoutMs: 300_000,
});

export interface PlannedModel {
  readonly model: ModelInfo;
  readonly firstTokenTimeoutMs: number;
}

/** Where one request goes: the profile (for its token limits), the region, and the models to try, in order. */
export interface Plan {
  readonly profile: ProfileInfo;
  readonly region: Region;
  readonly chain: readonly PlannedModel[];
}

/** max(floor, ceil(measured TTFT for the region x multiple)). */
export function firstTokenDeadlineMs(
  model: Pick<ModelInfo, 'ttftUsEastMs' | 'ttftAsiaMs'>,
  region: Region,
  opts: Pick<RoutingOptions, 'firstTokenFloorMs' | 'ttftMultiple'> = DEFAULT_ROUTING_OPTIONS,
): number {
  return Math.max(opts.firstTokenFloorMs, Math.ceil(ttftFor(model, region) * opts.ttftMultiple));
}

/**
 * The plan for (tenant, profile, region). Pure.
 *
 * The tenant's override of `profile` for exactly `region` wins, else its override with scope ALL, else the default
 * profile. The chain is the chosen model followed by the override's fallbacks when it gives them (`[]`: none), else
 * the chosen model's default fallbacks; duplicates are dropped and models the catalog does not know are skipped (an
 * admin removed one after an override named it: routing to the rest beats failing the request).
 *
 * @throws AppError BAD_USER_INPUT (field `profile`) for a profile the catalog does not have, listing the valid ones.
 */
export function buildPlan(
  catalog: Catalog,
  overrides: readonly OverrideInfo[],
  profile: string,
  region: Region,
  opts: Pick<RoutingOptions, 'firstTokenFloorMs' | 'ttftMultiple'> = DEFAULT_ROUTING_OPTIONS,
): Plan {
  const info = catalog.profiles.get(profile);
  if (!info) {
    const valid = [...catalog.profiles.keys()].sort().join(', ');
    const shown = profile.length > 64 ? `${profile.slice(0, 64)}...` : profile;
    throw new AppError('BAD_USER_INPUT', `profile: unknown profile "${shown}"; valid profiles: ${valid}`, { field: 'profile' });
  }
  let override: OverrideInfo | undefined;
  for (const o of overrides) {
    if (o.profile !== profile) continue;
    if (o.scope === region) {
      override = o;
      break;
    }
    if (o.scope === 'ALL') override ??= o;
  }
  const head = override?.model ?? info.model;
  const fallbacks = override?.fallbacks ?? catalog.fallbacks.get(head) ?? [];

  const chain: PlannedModel[] = [];
  const seen = new Set<string>();
  for (const id of [head, ...fallbacks]) {
    if (seen.has(id)) continue;
    seen.add(id);
    const model = catalog.models.get(id);
    if (model) chain.push({ model, firstTokenTimeoutMs: firstTokenDeadlineMs(model, region, opts) });
  }
  return { profile: info, region, chain };
}

/**
 * The plan for a request that names a model id instead of a profile (the OpenAI-compatible surface): that model,
 * then its default fallbacks. Pure. Its token limits are those of the widest profile that routes to the model,
 * else the widest of all profiles, so naming a model never grants more than some profile already does; the plan's
 * profile name (what the ledger records) is the model id.
 *
 * @throws AppError NOT_FOUND (field `model`) for a model the catalog does not have.
 */
export function buildModelPlan(
  catalog: Catalog,
  modelId: string,
  region: Region,
  opts: Pick<RoutingOptions, 'firstTokenFloorMs' | 'ttftMultiple'> = DEFAULT_ROUTING_OPTIONS,
): Plan {
  const head = catalog.models.get(modelId);
  if (!head) {
    const shown = modelId.length > 64 ? `${modelId.slice(0, 64)}...` : modelId;
    throw new AppError('NOT_FOUND', `model: no profile or model named "${shown}"; GET /v1/models lists the ones you may call`, { field: 'model' });
  }
  const profiles = [...catalog.profiles.values()];
  const routing = profiles.filter((p) => p.model === modelId);
  const widest = (routing.length ? routing : profiles).reduce<ProfileInfo | null>((w, p) => (!w || p.maxTokensCap > w.maxTokensCap ? p : w), null);
  // No profile at all means no token limits to borrow: refuse rather than invent some.
  if (!widest) throw new AppError('NOT_FOUND', 'model: the catalog has no profiles, so no model can be called by id', { field: 'model' });
  const chain: PlannedModel[] = [];
  const seen = new Set<string>();
  for (const id of [modelId, ...(catalog.fallbacks.get(modelId) ?? [])]) {
    const model = catalog.models.get(id);
    if (seen.has(id) || !model) continue;
    seen.add(id);
    chain.push({ model, firstTokenTimeoutMs: firstTokenDeadlineMs(model, region, opts) });
  }
  return {
    profile: { name: head.id, model: head.id, defaultMaxTokens: widest.defaultMaxTokens, maxTokensCap: widest.maxTokensCap },
    region,
    chain,
  };
}
