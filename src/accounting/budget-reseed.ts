import { rethrowUnavailable } from '../errors';
import { SETTLED_MARKER_MIN_MS, type Limiter } from '../limits';
import type { Ledger } from './ledger';
import { monthRange } from './period';

export interface ReseedDeps {
  readonly ledger: Pick<Ledger, 'monthState' | 'lastMinute'>;
  readonly limiter: Pick<Limiter, 'reseed'>;
  /** How long a hold lives; a reseeded hold expires as long after its request started. */
  readonly holdTtlMs: number;
}

/**
 * Rebuilds a tenant-month's budget state in Redis from the ledger (cold start, Redis flushed, upgrade from an
 * older key format). SET, never additive: the limiter writes only when the month's key is missing, and settled
 * markers resolve a settlement that raced the read. Every reseed starts a new generation, which admission checks
 * after its write-ahead INSERT. Postgres or Redis down: SERVICE_UNAVAILABLE.
 */
export async function reseedBudget(
  deps: ReseedDeps,
  t: { readonly tenantId: string; readonly month: string; readonly requestsPerMinute: number | null; readonly tokensPerMinute: number | null },
): Promise<void> {
  const { start, end } = monthRange(t.month);
  const [state, recent] = await Promise.all([deps.ledger.monthState(t.tenantId, start, end, SETTLED_MARKER_MIN_MS), deps.ledger.lastMinute(t.tenantId)]).catch(
    rethrowUnavailable('Postgres'),
  );
  await deps.limiter
    .reseed({
      tenantId: t.tenantId,
      month: t.month,
      spentMicros: state.spentMicros,
      holds: state.holds.map((h) => ({
        requestId: h.requestId,
        holdMicros: h.holdMicros,
        expiresAtMs: h.startedAtMs + deps.holdTtlMs,
        admittedAtMs: h.startedAtMs,
        apiKeyId: h.apiKeyId,
      })),
      // Already in spentMicros: their markers stop a late or retried settlement from adding them again.
      recentlySettled: state.recentlySettled,
      // A flushed Redis must not hand out a fresh burst: the last minute's requests count against the limits.
      requestsLastMinute: recent.requests,
      tokensLastMinute: recent.tokens,
      requestsPerMinute: t.requestsPerMinute,
      tokensPerMinute: t.tokensPerMinute,
      // Each key's share the same way: its spend (its budget) and its last minute (its windows).
      apiKeys: [...new Set([...state.spentByApiKey.keys(), ...recent.byApiKey.keys()])].map((apiKeyId) => ({
        apiKeyId,
        spentMicros: state.spentByApiKey.get(apiKeyId) ?? 0n,
        requestsLastMinute: recent.byApiKey.get(apiKeyId)?.requests ?? 0,
        tokensLastMinute: recent.byApiKey.get(apiKeyId)?.tokens ?? 0,
      })),
    })
    .catch(rethrowUnavailable('Redis'));
}
