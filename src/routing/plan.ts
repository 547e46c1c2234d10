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
