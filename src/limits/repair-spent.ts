import { microsArg } from './args';
import { limitKeys } from './keys';
import { parseCountReply } from './replies';
import { luaScript, runScript, type LimitsRedis } from './run-script';
import { REPAIR_SPENT_LUA } from './scripts/repair-spent.lua';

const REPAIR_SPENT = luaScript('repair-spent', REPAIR_SPENT_LUA);

export interface SpentRepair {
  /**
   * Rewrites a tenant-month's gate `spent` from the ledger if it still equals `observedMicros` (see
   * scripts/repair-spent.lua.ts). Rejects when Redis fails.
   */
  repairSpent(i: { tenantId: string; month: string; observedMicros: bigint; ledgerMicros: bigint }): Promise<{ repaired: boolean }>;
}

/** The reconciler's repair of lasting drift, beside the limiter (same keys, same script runner). */
export function makeSpentRepair(redis: LimitsRedis, opts: { keyPrefix?: string } = {}): SpentRepair {
  const keys = limitKeys(opts.keyPrefix ?? 'lg');
  return {
    async repairSpent(i) {
      const reply = await runScript(redis, REPAIR_SPENT, [keys.month(i.tenantId, i.month).budget], [
        microsArg('observedMicros', i.observedMicros),
        microsArg('ledgerMicros', i.ledgerMicros),
      ]);
      return { repaired: parseCountReply('repair-spent', reply) === 1 };
    },
  };
}
