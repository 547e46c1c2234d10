import { countArg, limitArg, microsArg, msArg, optionalMicrosArg, signedCountArg } from './args';
import { limitKeys, type MonthKeys } from './keys';
import { parseAdmitReply, parseBudgetStateReply, parseCountReply, parseExtendHoldReply } from './replies';
import { runScript, type LimitsRedis } from './run-script';
import { SCRIPTS } from './scripts';
import type { Limiter } from './types';

const DAY_MS = 24 * 60 * 60 * 1000;
/** A month's state outlives its month (and any late settlement) by far, then disappears by itself. */
export const MONTH_STATE_TTL_MS = 40 * DAY_MS;
/** How long a settlement is remembered: a retry of settle within this window applies nothing. */
export const SETTLED_MARKER_TTL_MS = 2 * DAY_MS;
/** How long a swept hold waits for its late settlement; the same window as the marker. */
export const SWEPT_RETENTION_MS = SETTLED_MARKER_TTL_MS;

const monthKeyList = (k: MonthKeys): string[] => [k.budget, k.holds, k.holdAmounts, k.swept];

/**
 * The Redis fast gate: rate and token limits and the monthly budget of each tenant, exact across gateway
 * instances because every decision is one Lua script on Redis TIME. Every method rejects (never answers) when
 * Redis fails, so callers fail closed; inputs outside the exact range of Lua numbers throw RangeError.
 */
export function makeLimiter(redis: LimitsRedis, opts: { keyPrefix?: string } = {}): Limiter {
  const keys = limitKeys(opts.keyPrefix ?? 'lg');
  const stateTtl = String(MONTH_STATE_TTL_MS);
  const retention = String(SWEPT_RETENTION_MS);

  return {
    async admit(i) {
      const month = keys.month(i.tenantId, i.month);
      const rate = keys.rate(i.tenantId);
      const reply = await runScript(
        redis,
        SCRIPTS.admit,
        [...monthKeyList(month), rate.rpm, rate.tpm],
        [
          requestIdArg(i.requestId),
          limitArg('requestsPerMinute', i.requestsPerMinute),
          limitArg('tokensPerMinute', i.tokensPerMinute),
          countArg('tokensEstimate', i.tokensEstimate),
          optionalMicrosArg('budgetMicros', i.budgetMicros),
          microsArg('holdMicros', i.holdMicros),
          msArg('holdTtlMs', i.holdTtlMs),
          stateTtl,
          retention,
        ],
      );
      return parseAdmitReply(reply);
    },

    async settle(i) {
      const month = keys.month(i.tenantId, i.month);
      const reply = await runScript(
        redis,
        SCRIPTS.settle,
        [...monthKeyList(month), keys.settled(i.tenantId, i.requestId), keys.rate(i.tenantId).tpm],
        [
          requestIdArg(i.requestId),
          microsArg('actualMicros', i.actualMicros),
          signedCountArg('actualTokens - tokensEstimate', countNumber('actualTokens', i.actualTokens) - countNumber('tokensEstimate', i.tokensEstimate)),
          String(SETTLED_MARKER_TTL_MS),
          stateTtl,
        ],
      );
      return { applied: parseCountReply('settle', reply) === 1 };
    },

    async extendHold(i) {
      const month = keys.month(i.tenantId, i.month);
      const reply = await runScript(
        redis,
        SCRIPTS.extendHold,
        [...monthKeyList(month), keys.settled(i.tenantId, i.requestId)],
        [
          requestIdArg(i.requestId),
          microsArg('extraMicros', i.extraMicros),
          optionalMicrosArg('budgetMicros', i.budgetMicros),
          msArg('holdTtlMs', i.holdTtlMs),
          stateTtl,
          retention,
        ],
      );
      return parseExtendHoldReply(reply);
    },

    async reseed(i) {
      const month = keys.month(i.tenantId, i.month);
      const rate = keys.rate(i.tenantId);
      const seen = new Set<string>();
      const markerKeys: string[] = [];
      const holdArgs: string[] = [];
      for (const h of i.holds) {
        // A duplicate would be held (or counted from its marker) twice.
        if (seen.has(h.requestId)) throw new RangeError(`limits: reseed lists request ${h.requestId} twice`);
        seen.add(h.requestId);
        markerKeys.push(keys.settled(i.tenantId, h.requestId));
        holdArgs.push(requestIdArg(h.requestId), microsArg('holdMicros', h.holdMicros), msArg('expiresAtMs', h.expiresAtMs, 0));
      }
      const reply = await runScript(
        redis,
        SCRIPTS.reseed,
        [...monthKeyList(month), rate.rpm, rate.tpm, ...markerKeys],
        [
          microsArg('spentMicros', i.spentMicros),
          stateTtl,
          limitArg('requestsPerMinute', i.requestsPerMinute),
          limitArg('requestsLastMinute', i.requestsLastMinute),
          limitArg('tokensPerMinute', i.tokensPerMinute),
          limitArg('tokensLastMinute', i.tokensLastMinute),
          ...holdArgs,
        ],
      );
      return { seeded: parseCountReply('reseed', reply) === 1 };
    },

    async budgetState(tenantId, month) {
      const reply = await runScript(redis, SCRIPTS.budgetState, monthKeyList(keys.month(tenantId, month)), [retention]);
      return parseBudgetStateReply(reply);
    },

    async sweepExpiredHolds(tenantId, month) {
      const reply = await runScript(redis, SCRIPTS.sweepHolds, monthKeyList(keys.month(tenantId, month)), [retention]);
      return parseCountReply('sweep-holds', reply);
    },
  };
}

function requestIdArg(requestId: string): string {
  if (requestId.length === 0) throw new RangeError('limits: request id must be non-empty');
  return requestId;
}

function countNumber(field: string, v: number): number {
  countArg(field, v);
  return v;
}
