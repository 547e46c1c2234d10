import type { WindowUse } from '../limits';
/**
 * The x-ratelimit-* headers OpenAI's clients read. Every field is optional: null means "not known" or "no limit",
 * and its header is left out rather than guessed.
 */
export interface RateLimitSnapshot {
  readonly limitRequests: number | null;
  readonly remainingRequests: number | null;
  readonly resetRequestsMs: number | null;
  readonly limitTokens: number | null;
  readonly remainingTokens: number | null;
  readonly resetTokensMs: number | null;
}

/** OpenAI's duration format for the reset headers: "250ms", "1s", "6m0s", "1h2m3s". */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h}h${m}m${s}s`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

export function rateLimitHeaders(s: RateLimitSnapshot): Record<string, string> {
  const h: Record<string, string> = {};
  const put = (name: string, v: number | null, format: (n: number) => string = String) => {
    if (v !== null) h[name] = format(v);
  };
  put('x-ratelimit-limit-requests', s.limitRequests);
  put('x-ratelimit-remaining-requests', s.remainingRequests);
  put('x-ratelimit-reset-requests', s.resetRequestsMs, formatReset);
  put('x-ratelimit-limit-tokens', s.limitTokens);
  put('x-ratelimit-remaining-tokens', s.remainingTokens);
  put('x-ratelimit-reset-tokens', s.resetTokensMs, formatReset);
  return h;
}

/**
 * The headers' figures: the tenant's limits; after an admission, what its windows have left and when their oldest
 * part leaves; on a rate denial, nothing left of the denied limit until retryAfterMs.
 */
export function snapshotOf(
  limits: { readonly requestsPerMinute: number | null; readonly tokensPerMinute: number | null },
  denial: { readonly limit: unknown; readonly retryAfterMs: unknown } | null,
  windows: { readonly requests: WindowUse | null; readonly tokens: WindowUse | null } | undefined,
): RateLimitSnapshot {
  const base = snapshotFromSettings(limits, denial);
  const left = (limit: number | null, w: WindowUse | null | undefined) => (limit !== null && w ? Math.max(0, limit - w.used) : null);
  return {
    ...base,
    remainingRequests: base.remainingRequests ?? left(limits.requestsPerMinute, windows?.requests),
    resetRequestsMs: base.resetRequestsMs ?? (limits.requestsPerMinute !== null ? (windows?.requests?.resetMs ?? null) : null),
    remainingTokens: base.remainingTokens ?? left(limits.tokensPerMinute, windows?.tokens),
    resetTokensMs: base.resetTokensMs ?? (limits.tokensPerMinute !== null ? (windows?.tokens?.resetMs ?? null) : null),
  };
}

/**
 * What is known today without asking the gate: the tenant's limits, and on a rate denial that the denied limit has
 * nothing left until retryAfterMs.
 */
export function snapshotFromSettings(
  limits: { readonly requestsPerMinute: number | null; readonly tokensPerMinute: number | null },
  denial: { readonly limit: unknown; readonly retryAfterMs: unknown } | null = null,
): RateLimitSnapshot {
  const denied = (name: string) => denial !== null && denial.limit === name && typeof denial.retryAfterMs === 'number';
  const rpm = denied('REQUESTS_PER_MINUTE');
  const tpm = denied('TOKENS_PER_MINUTE');
  return {
    limitRequests: limits.requestsPerMinute,
    remainingRequests: rpm ? 0 : null,
    resetRequestsMs: rpm ? (denial!.retryAfterMs as number) : null,
    limitTokens: limits.tokensPerMinute,
    remainingTokens: tpm ? 0 : null,
    resetTokensMs: tpm ? (denial!.retryAfterMs as number) : null,
  };
}
