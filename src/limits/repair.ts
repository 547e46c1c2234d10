import { microsArg } from './args';
import { apiKeyIdPart, limitKeys } from './keys';
import { parseCountReply } from './replies';
import { luaScript, runScript, type LimitsRedis } from './run-script';
import { REPAIR_SPENT_LUA } from './scripts/repair-spent.lua';
import { REPAIR_RELEASE_HOLD_LUA } from './scripts/repair-release-hold.lua';
import { KEY_SPENT_LUA } from './scripts/key-spent.lua';

const REPAIR_SPENT = luaScript('repair-spent', REPAIR_SPENT_LUA);
const REPAIR_RELEASE_HOLD = luaScript('repair-release-hold', REPAIR_RELEASE_HOLD_LUA);
const KEY_SPENT = luaScript('key-spent', KEY_SPENT_LUA);

/** What holdsOlderThan needs: one tenant's hash and the server's clock in one round trip (one slot on a cluster). */
interface HoldReader {
  multi(): { hgetall(key: string): { time(): { exec(): Promise<unknown> } } };
}

export interface GateRepair {
  /**
   * Rewrites a tenant-month's gate `spent` (or, with apiKeyId, that key's spent) from the ledger if it still equals
   * `observedMicros` (see scripts/repair-spent.lua.ts). Rejects when Redis fails.
   */
  repairSpent(i: { tenantId: string; month: string; observedMicros: bigint; ledgerMicros: bigint; apiKeyId?: string }): Promise<{ repaired: boolean }>;
  /** Every API key's spent in the tenant-month's gate; null when the month is missing. */
  keySpent(i: { tenantId: string; month: string }): Promise<Map<string, bigint> | null>;
  /** Releases the leftover hold of a request the ledger already holds settled (scripts/repair-release-hold.lua.ts). */
  releaseLeftoverHold(i: { tenantId: string; month: string; requestId: string }): Promise<{ released: boolean }>;
  /** The request ids of a tenant-month's holds placed more than `olderThanMs` ago (by Redis TIME). */
  holdsOlderThan(i: { tenantId: string; month: string; olderThanMs: number }): Promise<string[]>;
}

/** Repairs of the gate toward the ledger, beside the limiter (same keys, same script runner). */
export function makeGateRepair(redis: LimitsRedis, opts: { keyPrefix?: string } = {}): GateRepair {
  const keys = limitKeys(opts.keyPrefix ?? 'lg');
  return {
    async repairSpent(i) {
      const reply = await runScript(
        redis,
        REPAIR_SPENT,
        [keys.month(i.tenantId, i.month).budget],
        [
          microsArg('observedMicros', i.observedMicros),
          microsArg('ledgerMicros', i.ledgerMicros),
          i.apiKeyId === undefined ? 'spent' : `k:${apiKeyIdPart(i.apiKeyId)}:s`,
        ],
      );
      return { repaired: parseCountReply('repair-spent', reply) === 1 };
    },
    async keySpent(i) {
      const reply = await runScript(redis, KEY_SPENT, [keys.month(i.tenantId, i.month).budget], []);
      if (reply === null) return null;
      if (!Array.isArray(reply) || reply.length % 2 !== 0) throw new Error(`limits: unexpected key-spent reply ${JSON.stringify(reply)}`);
      const out = new Map<string, bigint>();
      for (let n = 0; n < reply.length; n += 2) out.set(String(reply[n]), BigInt(String(reply[n + 1])));
      return out;
    },
    async holdsOlderThan(i) {
      const [[, amounts], [, time]] = (await (redis as unknown as HoldReader).multi().hgetall(keys.month(i.tenantId, i.month).holdAmounts).time().exec()) as [
        [unknown, Record<string, string>],
        [unknown, [string, string]],
      ];
      // A hold's value is "amount:slot[:apiKeyId]", the slot being the second (Redis TIME) its admission was made in;
      // a hold without a slot (recreated by an extension after a sweep) is never taken for an old one.
      const cutoffSlot = Math.floor((Number(time[0]) * 1000 - i.olderThanMs) / 1000);
      return Object.entries(amounts)
        .filter(([, v]) => {
          const slot = /^\d+:(\d+)/.exec(v)?.[1];
          return slot !== undefined && Number(slot) < cutoffSlot;
        })
        .map(([id]) => id);
    },
    async releaseLeftoverHold(i) {
      const k = keys.month(i.tenantId, i.month);
      const reply = await runScript(redis, REPAIR_RELEASE_HOLD, [k.budget, k.holds, k.holdAmounts], [i.requestId]);
      return { released: parseCountReply('repair-release-hold', reply) === 1 };
    },
  };
}
