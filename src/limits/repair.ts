import { microsArg } from './args';
import { limitKeys } from './keys';
import { parseCountReply } from './replies';
import { luaScript, runScript, type LimitsRedis } from './run-script';
import { REPAIR_SPENT_LUA } from './scripts/repair-spent.lua';
import { REPAIR_RELEASE_HOLD_LUA } from './scripts/repair-release-hold.lua';

const REPAIR_SPENT = luaScript('repair-spent', REPAIR_SPENT_LUA);
const REPAIR_RELEASE_HOLD = luaScript('repair-release-hold', REPAIR_RELEASE_HOLD_LUA);

export interface GateRepair {
  /**
   * Rewrites a tenant-month's gate `spent` from the ledger if it still equals `observedMicros` (see
   * scripts/repair-spent.lua.ts). Rejects when Redis fails.
   */
  repairSpent(i: { tenantId: string; month: string; observedMicros: bigint; ledgerMicros: bigint }): Promise<{ repaired: boolean }>;
  /** Releases the leftover hold of a request the ledger already holds settled (scripts/repair-release-hold.lua.ts). */
  releaseLeftoverHold(i: { tenantId: string; month: string; requestId: string }): Promise<{ released: boolean }>;
}

/** Repairs of the gate toward the ledger, beside the limiter (same keys, same script runner). */
export function makeGateRepair(redis: LimitsRedis, opts: { keyPrefix?: string } = {}): GateRepair {
  const keys = limitKeys(opts.keyPrefix ?? 'lg');
  return {
    async repairSpent(i) {
      const reply = await runScript(redis, REPAIR_SPENT, [keys.month(i.tenantId, i.month).budget], [
        microsArg('observedMicros', i.observedMicros),
        microsArg('ledgerMicros', i.ledgerMicros),
      ]);
      return { repaired: parseCountReply('repair-spent', reply) === 1 };
    },
    async releaseLeftoverHold(i) {
      const k = keys.month(i.tenantId, i.month);
      const reply = await runScript(redis, REPAIR_RELEASE_HOLD, [k.budget, k.holds, k.holdAmounts], [i.requestId]);
      return { released: parseCountReply('repair-release-hold', reply) === 1 };
    },
  };
}
