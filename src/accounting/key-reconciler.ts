import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import type { GateRepair } from '../limits/repair';
import type { GateLedger } from './gate-ledger';
import { monthRange } from './period';

export interface KeyDrift {
  readonly tenantId: string;
  readonly apiKeyId: string;
  readonly month: string;
  readonly redisSpentMicros: bigint;
  readonly ledgerSpentMicros: bigint;
  readonly pending: number;
  readonly repaired: boolean;
}

export interface KeyReconciler {
  /** Compares every API key's gate spent with the ledger for the month, repairs lasting drift, returns it. */
  reconcileKeys(month: string): Promise<KeyDrift[]>;
}

/**
 * The reconciler's pass for API keys' spent, with the tenant's rules (see reconciler.ts): a difference is re-read
 * after `confirmMs`; a key with settlements still pending for the gate is left to the applier; what lasts is
 * rewritten from the ledger under a compare-and-set (observe the gate, then read the ledger), logged as an error.
 */
export function makeKeyReconciler(deps: {
  db: Db;
  gateLedger: Pick<GateLedger, 'monthSettledByKey'>;
  repair: Pick<GateRepair, 'keySpent' | 'repairSpent'>;
  logger: Logger;
  confirmMs?: number;
}): KeyReconciler {
  /** (tenant, key) pairs whose gate spent differs from the ledger's, from one grouped query. */
  const candidates = async (month: string): Promise<Map<string, Set<string>>> => {
    const { start, end } = monthRange(month);
    const rows = await deps.db.ledgerEntry.groupBy({
      by: ['tenantId', 'apiKeyId'],
      where: { state: 'SETTLED', startedAt: { gte: start, lt: end }, apiKeyId: { not: null } },
      _sum: { costMicros: true },
    });
    const ledger = new Map<string, Map<string, bigint>>();
    for (const r of rows) {
      const m = ledger.get(r.tenantId) ?? new Map<string, bigint>();
      m.set(r.apiKeyId!, r._sum.costMicros ?? 0n);
      ledger.set(r.tenantId, m);
    }
    const out = new Map<string, Set<string>>();
    for (const [tenantId, byKey] of ledger) {
      const gate = await deps.repair.keySpent({ tenantId, month });
      if (!gate) continue; // missing month: the next admission reseeds it, per key, from the ledger
      const differing = [...new Set([...byKey.keys(), ...gate.keys()])].filter((k) => (gate.get(k) ?? 0n) !== (byKey.get(k) ?? 0n));
      if (differing.length > 0) out.set(tenantId, new Set(differing));
    }
    return out;
  };

  const confirmAndRepair = async (tenantId: string, keys: Set<string>, month: string): Promise<KeyDrift[]> => {
    const observed = await deps.repair.keySpent({ tenantId, month });
    if (!observed) return [];
    const { start, end } = monthRange(month);
    const ledger = await deps.gateLedger.monthSettledByKey(tenantId, start, end);
    const out: KeyDrift[] = [];
    for (const apiKeyId of keys) {
      const redisSpentMicros = observed.get(apiKeyId) ?? 0n;
      const { spentMicros: ledgerSpentMicros, pending } = ledger.get(apiKeyId) ?? { spentMicros: 0n, pending: 0 };
      if (redisSpentMicros === ledgerSpentMicros) continue;
      const repaired =
        pending === 0 &&
        (await deps.repair.repairSpent({ tenantId, month, apiKeyId, observedMicros: redisSpentMicros, ledgerMicros: ledgerSpentMicros })).repaired;
      const log = { tenantId, apiKeyId, month, redisSpentMicros: redisSpentMicros.toString(), ledgerSpentMicros: ledgerSpentMicros.toString(), pending };
      if (repaired) deps.logger.error(log, "API key drift: the gate's spent differed from the ledger; rewritten from the ledger");
      else deps.logger.warn(log, 'API key gap: settlements pending for the gate or spent moved; retried next pass');
      out.push({ tenantId, apiKeyId, month, redisSpentMicros, ledgerSpentMicros, pending, repaired });
    }
    return out;
  };

  return {
    async reconcileKeys(month) {
      const first = await candidates(month);
      if (first.size === 0) return [];
      await new Promise((r) => setTimeout(r, deps.confirmMs ?? 1_000));
      const lasting: KeyDrift[] = [];
      for (const [tenantId, keys] of first) lasting.push(...(await confirmAndRepair(tenantId, keys, month)));
      return lasting;
    },
  };
}
