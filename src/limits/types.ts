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
  /** The hold is swept (released) if not settled within this many ms. */
  readonly holdTtlMs: number;
}

export type RateLimitName = 'REQUESTS_PER_MINUTE' | 'TOKENS_PER_MINUTE';

export type AdmitResult =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly reason: 'RATE_LIMITED';
      readonly limit: RateLimitName;
      /** When one more such request would be admitted (the longer wait if both limits deny), >= 1. */
      readonly retryAfterMs: number;
      /**
       * Present when this request alone is larger than the whole per-minute limit (or the limit is 0): no wait
       * admits it. retryAfterMs is then one window (60 000 ms) so a naive client does not spin.
       */
      readonly exceedsLimit?: true;
    }
  | { readonly allowed: false; readonly reason: 'BUDGET_EXCEEDED'; readonly remainingMicros: bigint }
  /** The month's state is missing (cold start, Redis flushed): reseed from Postgres, then admit again. */
  | { readonly allowed: false; readonly reason: 'NEEDS_RESEED' };

export interface SettleInput {
  readonly tenantId: string;
  readonly requestId: string;
  readonly month: string;
  readonly actualMicros: bigint;
  readonly actualTokens: number;
  readonly tokensEstimate: number;
}

export interface ExtendHoldInput {
  readonly tenantId: string;
  readonly requestId: string;
  readonly month: string;
  readonly extraMicros: bigint;
  readonly budgetMicros: bigint | null;
  readonly holdTtlMs: number;
}

export type ExtendHoldResult =
  /** remainingMicros: budget left after the extension; null without a budget. */
  | { readonly allowed: true; readonly remainingMicros: bigint | null }
  | { readonly allowed: false; readonly reason: 'BUDGET_EXCEEDED'; readonly remainingMicros: bigint }
  /** NEEDS_RESEED: the month's state is missing. ALREADY_SETTLED: the request was settled; nothing to extend. */
  | { readonly allowed: false; readonly reason: 'NEEDS_RESEED' | 'ALREADY_SETTLED'; readonly remainingMicros: null };

export interface ReseedHold {
  readonly requestId: string;
  readonly holdMicros: bigint;
  /** Epoch ms (the same clock as Redis TIME); a hold already expired is not re-held. */
  readonly expiresAtMs: number;
}

export interface ReseedInput {
  readonly tenantId: string;
  readonly month: string;
  /** The month's SETTLED ledger sum. */
  readonly spentMicros: bigint;
  /** The month's HELD ledger rows; request ids must be unique. */
  readonly holds: ReadonlyArray<ReseedHold>;
  /** With the matching limit, seeds a missing bucket so a flushed Redis hands out no fresh burst. */
  readonly requestsLastMinute?: number;
  readonly tokensLastMinute?: number;
  readonly requestsPerMinute?: number | null;
  readonly tokensPerMinute?: number | null;
}

export interface BudgetState {
  readonly spentMicros: bigint;
  readonly heldMicros: bigint;
}

export interface Limiter {
  /** One atomic decision: requests/min, tokens/min and budget, all applied or none. Rejects only if Redis fails. */
  admit(i: AdmitInput): Promise<AdmitResult>;
  /**
   * Idempotent per requestId: the first call releases the hold and adds actualMicros to spent; later calls do
   * nothing (applied: false). A hold already swept: the cost is still added, once. Month missing: nothing is
   * incremented (the reseed counts it). Corrects tokens/min by (actualTokens - tokensEstimate), softly.
   */
  settle(i: SettleInput): Promise<{ applied: boolean }>;
  /** Grows a request's hold by extraMicros if spent + held + extra <= budget; refreshes its expiry. */
  extendHold(i: ExtendHoldInput): Promise<ExtendHoldResult>;
  /** Writes the month's state only if missing (seeded: false if it existed). See scripts/reseed.lua.ts. */
  reseed(i: ReseedInput): Promise<{ seeded: boolean }>;
  /** Spent and held as the gate sees them (expired holds swept first); null when the month is missing. */
  budgetState(tenantId: string, month: string): Promise<BudgetState | null>;
  /** Releases a tenant-month's expired holds (admit also does). Returns how many. */
  sweepExpiredHolds(tenantId: string, month: string): Promise<number>;
}
