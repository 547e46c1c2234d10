import type { Micros } from '../accounting/money';
import type { Region } from './model-table';

export type { Region };

/** One model as the running gateway knows it (loaded from the database; prices may change at run time). */
export interface ModelInfo {
  readonly id: string;
  readonly name: string;
  readonly provider: string;
  readonly ttftUsEastMs: number;
  readonly ttftAsiaMs: number | null;
  readonly tokensPerSecond: number;
  readonly outputMicrosPerMillion: Micros | null;
  readonly inputMicrosPerMillion: Micros | null;
  /** Null: cached prompt tokens are charged at the input price. */
  readonly cachedInputMicrosPerMillion?: Micros | null;
  /** Null: prompt tokens written to the cache are charged at the input price. */
  readonly cacheWriteMicrosPerMillion?: Micros | null;
  /** False: an admin disabled it globally; tenants/access.ts leaves it out of every chain. Absent: enabled. */
  readonly enabled?: boolean;
}

export interface ProfileInfo {
  readonly name: string;
  readonly model: string;
  readonly defaultMaxTokens: number;
  readonly maxTokensCap: number;
}

/** A tenant's override of one profile. scope ALL applies to every region that has no override of its own. */
export interface OverrideInfo {
  readonly profile: string;
  readonly scope: 'ALL' | Region;
  readonly model: string;
  /** Null: the chosen model's default chain. [] : no fallback at all. */
  readonly fallbacks: readonly string[] | null;
}

/** Models, profiles and default chains at one moment. Immutable; replaced as a whole when an admin changes it. */
export interface Catalog {
  readonly models: ReadonlyMap<string, ModelInfo>;
  readonly profiles: ReadonlyMap<string, ProfileInfo>;
  /** Default fallbacks per model, in order; a model without an entry has none. */
  readonly fallbacks: ReadonlyMap<string, readonly string[]>;
}
