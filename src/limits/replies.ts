import type { AdmitResult, BudgetState, ExtendHoldResult, LimitScope, WindowUse } from './types';

/**
 * Script replies -> results. A reply of another shape means the script and this code disagree: that throws
 * (masked as an internal error upstream), it is never read as an admission.
 */

const unexpected = (script: string, reply: unknown): Error => new Error(`limits: unexpected ${script} reply ${JSON.stringify(reply)}`);

const micros = (script: string, v: unknown, reply: unknown): bigint => {
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw unexpected(script, reply);
  return BigInt(v);
};

/** A window's (used, reset ms) pair at reply[i], '' '' for no limit; absent from replies of older scripts. */
function windowUse(reply: unknown[], i: number): WindowUse | null {
  const used = reply[i];
  const resetMs = reply[i + 1];
  if (used === undefined || used === '') return null;
  const n = Number(used);
  const r = Number(resetMs);
  if (!Number.isSafeInteger(n) || n < 0 || !Number.isSafeInteger(r) || r < 0) throw unexpected('admit', reply);
  return { used: n, resetMs: r };
}

/** Whose limit refused; replies of scripts before per-key limits name none: the tenant's. */
function scopeOf(script: string, v: unknown, reply: unknown): LimitScope {
  if (v === undefined || v === 'TENANT') return 'TENANT';
  if (v === 'KEY') return 'KEY';
  throw unexpected(script, reply);
}

export function parseAdmitReply(reply: unknown): AdmitResult {
  if (!Array.isArray(reply)) throw unexpected('admit', reply);
  switch (reply[0]) {
    case 'OK':
      if (typeof reply[1] !== 'string') throw unexpected('admit', reply);
      return { allowed: true, generation: reply[1], requests: windowUse(reply, 2), tokens: windowUse(reply, 4) };
    case 'NEEDS_RESEED':
      return { allowed: false, reason: 'NEEDS_RESEED' };
    case 'BUDGET_EXCEEDED':
      return { allowed: false, reason: 'BUDGET_EXCEEDED', scope: scopeOf('admit', reply[2], reply), remainingMicros: micros('admit', reply[1], reply) };
    case 'RATE_LIMITED': {
      const [, limit, retryAfterMs, never, scopeReply] = reply as unknown[];
      const scope = scopeOf('admit', scopeReply, reply);
      if (limit !== 'REQUESTS_PER_MINUTE' && limit !== 'TOKENS_PER_MINUTE' && limit !== 'CONCURRENT_REQUESTS') throw unexpected('admit', reply);
      if (typeof retryAfterMs !== 'number' || !Number.isSafeInteger(retryAfterMs) || retryAfterMs < 1) {
        throw unexpected('admit', reply);
      }
      if (never === 1) return { allowed: false, reason: 'RATE_LIMITED', limit, scope, retryAfterMs, exceedsLimit: true };
      if (never !== 0) throw unexpected('admit', reply);
      return { allowed: false, reason: 'RATE_LIMITED', limit, scope, retryAfterMs };
    }
    default:
      throw unexpected('admit', reply);
  }
}

export function parseExtendHoldReply(reply: unknown): ExtendHoldResult {
  if (!Array.isArray(reply)) throw unexpected('extend-hold', reply);
  switch (reply[0]) {
    case 'OK':
      return { allowed: true, remainingMicros: reply[1] === '' ? null : micros('extend-hold', reply[1], reply) };
    case 'BUDGET_EXCEEDED':
      return {
        allowed: false,
        reason: 'BUDGET_EXCEEDED',
        scope: scopeOf('extend-hold', reply[2], reply),
        remainingMicros: micros('extend-hold', reply[1], reply),
      };
    case 'NEEDS_RESEED':
      return { allowed: false, reason: 'NEEDS_RESEED', remainingMicros: null };
    case 'SETTLED':
      return { allowed: false, reason: 'ALREADY_SETTLED', remainingMicros: null };
    default:
      throw unexpected('extend-hold', reply);
  }
}

export function parseBudgetStateReply(reply: unknown): BudgetState | null {
  if (reply === null) return null;
  if (!Array.isArray(reply) || reply.length !== 2) throw unexpected('budget-state', reply);
  return { spentMicros: micros('budget-state', reply[0], reply), heldMicros: micros('budget-state', reply[1], reply) };
}

/** settle, release and reseed answer 1 or 0. */
export function parseCountReply(script: string, reply: unknown): number {
  if (typeof reply !== 'number' || !Number.isSafeInteger(reply) || reply < 0) throw unexpected(script, reply);
  return reply;
}
