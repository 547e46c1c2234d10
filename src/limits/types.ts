/** The fast gate's contract. Money is micro-USD in bigint; time is Redis TIME; expected denials are values. */

export interface AdmitInput {
  readonly tenantId: string;
  readonly requestId: string;
  /** 'YYYY-MM': the UTC month the request started, computed by the caller. */
  readonly month: string;
  /** null = no limit; 0 admits nothing. */
  readonly requestsPerMinute: number | null;
  /** null = no limit; 0 admits nothing. */
  readonly tokensPerMinute: number | null;
  /** Prompt estimate + maxTokens, charged against tokens/min at admission and corrected at settlement. */
  readonly tokensEstimate: number;
  /** null = no budget (spent and the hold are still tracked). */
  readonly budgetMicros: bigint | null;
  /** Worst-case cost, reserved until settlement. */
  readonly holdMicros: bigint;
  /** The hold (and the in-flight slot) is swept (released) if not settled within this many ms. */
  readonly holdTtlMs: number;
  /** Requests of the tenant in flight at once; null = no cap; 0 admits nothing. */
  readonly maxConcurrentRequests?: number | null;
  /** The API key the request came with, checked against its own limits in the same decision. */
  readonly apiKey?: ApiKeyLimits;
}

/** An API key's own limits (null = none), checked beside the tenant's with the same rules. */
export interface ApiKeyLimits {
  readonly id: string;
  readonly budgetMicros: bigint | null;
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
}

/** Whose limit refused: the tenant's or the API key's own. */
export type LimitScope = 'TENANT' | 'KEY';

export type RateLimitName = 'REQUESTS_PER_MINUTE' | 'TOKENS_PER_MINUTE' | 'CONCURRENT_REQUESTS';

/** One rolling window right after an admission: its total with this request taken, and when its oldest part leaves. */
export interface WindowUse {
  readonly used: number;
  readonly resetMs: number;
}

export type AdmitResult =
  /**
   * generation: the reseed that wrote the state this admission used (compare with Limiter.generation). requests,
   * tokens: the windows after this admission (null: no such limit), for clients' rate-limit headers.
   */
  | { readonly allowed: true; readonly generation: string; readonly requests: WindowUse | null; readonly tokens: WindowUse | null }
  | {
      readonly allowed: false;
      readonly reason: 'RATE_LIMITED';
      readonly limit: RateLimitName;
      readonly scope: LimitScope;
      /**
       * When enough leaves the rolling window for this request to fit (the longer wait if both windows deny), >= 1.
       * CONCURRENT_REQUESTS: 1000 (a slot frees when a request in flight ends).
       */
      readonly retryAfterMs: number;
      /**
       * Present when this request alone is larger than the whole per-minute limit (or the limit is 0): no wait
       * admits it. retryAfterMs is then one window (60 000 ms; 1000 for a concurrency cap of 0) so a naive client
       * does not spin.
       */
      readonly exceedsLimit?: true;
    }
  | { readonly allowed: false; readonly reason: 'BUDGET_EXCEEDED'; readonly scope: LimitScope; readonly remainingMicros: bigint }
  /** The month's state is missing (cold start, Redis flushed): reseed from Postgres, then admit again. */
  | { readonly allowed: false; readonly reason: 'NEEDS_RESEED' };

export interface SettleInput {
  readonly tenantId: string;
  readonly requestId: string;
  readonly month: string;
  readonly actualMicros: bigint;
  readonly actualTokens: number;
  readonly tokensEstimate: number;
  /** The ledger row's API key: the cost joins its spent (and the correction its tokens window). */
  readonly apiKeyId?: string | null;
}

export interface ExtendHoldInput {
  readonly tenantId: string;
  readonly requestId: string;
  readonly month: string;
  readonly extraMicros: bigint;
  readonly budgetMicros: bigint | null;
  readonly holdTtlMs: number;
  /** The request's API key: the extension must fit its budget too. */
  readonly apiKey?: Pick<ApiKeyLimits, 'id' | 'budgetMicros'>;
}

export type ExtendHoldResult =
  /** remainingMicros: the tenant's budget left after the extension; null without a budget. */
  | { readonly allowed: true; readonly remainingMicros: bigint | null }
  | { readonly allowed: false; readonly reason: 'BUDGET_EXCEEDED'; readonly scope: LimitScope; readonly remainingMicros: bigint }
  /** NEEDS_RESEED: the month's state is missing. ALREADY_SETTLED: the request was settled; nothing to extend. */
  | { readonly allowed: false; readonly reason: 'NEEDS_RESEED' | 'ALREADY_SETTLED'; readonly remainingMicros: null };

export interface ReseedHold {
  readonly requestId: string;
  readonly holdMicros: bigint;
  /** Epoch ms (the same clock as Redis TIME); a hold already expired is not re-held. */
  readonly expiresAtMs: number;
  /** When the request was admitted (epoch ms): its settlement corrects the tokens window there. */
  readonly admittedAtMs: number;
  /** The ledger row's API key (null: none): the hold joins that key's held. */
  readonly apiKeyId?: string | null;
}

/** One API key's share of a tenant-month, from the ledger. */
export interface ReseedApiKey {
  readonly apiKeyId: string;
  /** Its settled sum this month. */
  readonly spentMicros: bigint;
  /** Requests admitted with it in the last minute and their token estimates (seed its windows). */
  readonly requestsLastMinute: number;
  readonly tokensLastMinute: number;
}

/** A row the ledger holds as settled, recently enough that its settlement may still reach Redis. */
export interface ReseedSettled {
  readonly requestId: string;
  readonly costMicros: bigint;
}

export interface ReseedInput {
  readonly tenantId: string;
  readonly month: string;
  /** The month's SETTLED ledger sum. */
  readonly spentMicros: bigint;
  /** The month's HELD ledger rows; request ids must be unique. */
  readonly holds: ReadonlyArray<ReseedHold>;
  /**
   * Rows settled within the settled-marker window (SETTLED_MARKER_MIN_MS), already counted in spentMicros: each
   * gets a marker, so a late or retried settle of it applies nothing.
   */
  readonly recentlySettled?: ReadonlyArray<ReseedSettled>;
  /** With the matching limit, seeds a missing window so a flushed Redis hands out no fresh burst. */
  readonly requestsLastMinute?: number;
  readonly tokensLastMinute?: number;
  readonly requestsPerMinute?: number | null;
  readonly tokensPerMinute?: number | null;
  /** Every API key with settled spend this month or requests in the last minute; ids unique. */
  readonly apiKeys?: ReadonlyArray<ReseedApiKey>;
}

export interface BudgetState {
  readonly spentMicros: bigint;
  readonly heldMicros: bigint;
}

export interface Limiter {
  /**
   * One atomic decision: budget, requests in flight, rolling requests/min and tokens/min, all applied or none; a
   * refusal writes nothing. Rejects only if Redis fails.
   */
  admit(i: AdmitInput): Promise<AdmitResult>;
  /**
   * Idempotent per requestId for at least SETTLED_MARKER_MIN_MS (1 h) after its first application: the first call
   * releases the hold and the in-flight slot and adds actualMicros to spent; later calls do nothing (applied:
   * false). No hold (swept, or an id that never had one, e.g. an amendment '<uuid>:v2'): the cost is still added,
   * once. Month missing: nothing is incremented (the reseed counts it). Corrects the tokens window by
   * (actualTokens - tokensEstimate): a refund where the reservation was made, an overage from now.
   */
  settle(i: SettleInput): Promise<{ applied: boolean }>;
  /**
   * Undoes an admission whose request never reached the upstream (its write-ahead INSERT failed, or it was
   * refused on re-admission): hold, in-flight slot and window takes go; nothing is spent. Pass the AdmitInput.
   */
  release(i: AdmitInput): Promise<{ released: boolean }>;
  /** The generation of the month's state ('' when missing): compare with AdmitResult.generation after the INSERT. */
  generation(tenantId: string, month: string): Promise<string>;
  /** Grows a request's hold by extraMicros if spent + held + extra <= budget; refreshes its expiry. */
  extendHold(i: ExtendHoldInput): Promise<ExtendHoldResult>;
  /** Writes the month's state only if missing (seeded: false if it existed). See scripts/reseed.lua.ts. */
  reseed(i: ReseedInput): Promise<{ seeded: boolean }>;
  /** Spent and held as the gate sees them (expired holds swept first); null when the month is missing. */
  budgetState(tenantId: string, month: string): Promise<BudgetState | null>;
}
