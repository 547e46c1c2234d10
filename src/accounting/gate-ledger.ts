import type { Db } from '../infra/prisma';
import type { Micros } from './money';

/**
 * The ledger's side of "every settlement reaches the gate exactly once". A settlement is written as a version of
 * its row (1: the first settlement; 2: the amendment of a request that was reaped while it still ran) and stays
 * pending (gate_pending_since set) until the gate applier records that Redis took it. All times are Postgres'.
 */

/** One row whose latest settle version has not been confirmed applied to the gate. */
export interface PendingSettlement {
  readonly requestId: string;
  readonly tenantId: string;
  readonly apiKeyId: string | null;
  readonly startedAt: Date;
  readonly settleVersion: number;
  readonly gateAppliedVersion: number;
  readonly costMicros: Micros;
  readonly amendedMicros: Micros;
  readonly tokens: number;
  readonly amendedTokens: number;
}

export interface Amendment {
  readonly tenantId: string;
  readonly startedAt: Date;
  readonly amendedMicros: Micros;
  readonly amendedTokens: number;
}

export interface GateLedger {
  /** Rows pending for longer than `olderThanMs` (the owner's own attempt gets that long), oldest first. */
  pending(olderThanMs: number, limit: number): Promise<PendingSettlement[]>;
  /** Records that the gate holds these settle versions; a row stops being pending once its latest version is in. */
  confirmApplied(applied: ReadonlyArray<{ readonly requestId: string; readonly startedAt: Date; readonly version: number }>): Promise<void>;
  /** Age of the oldest pending settlement in ms (0 when none). */
  oldestPendingMs(): Promise<number>;
  /**
   * Version 2 of a row another path (the reaper) settled while its request still ran: adds what the request
   * consumed beyond the first settlement. Once per row; null when there is nothing to add or it was amended before.
   */
  amend(requestId: string, own: { readonly costMicros: Micros; readonly tokens: number; readonly completionTokens: number }): Promise<Amendment | null>;
  /** The month's settled sum and how many of its rows are still pending for the gate, read in one snapshot. */
  monthSettled(tenantId: string, start: Date, end: Date): Promise<{ spentMicros: Micros; pending: number }>;
  /** The same per API key of the tenant (rows without a key left out), in one snapshot. */
  monthSettledByKey(tenantId: string, start: Date, end: Date): Promise<Map<string, { spentMicros: Micros; pending: number }>>;
}

export function makeGateLedger(db: Db): GateLedger {
  return {
    pending: (olderThanMs, limit) => pendingRows(db, olderThanMs, limit),

    async confirmApplied(applied) {
      if (applied.length === 0) return;
      const ids = applied.map((a) => a.requestId);
      const versions = applied.map((a) => a.version);
      // The rows' started_at bounds prune the UPDATE to their month's partition (two just after a month begins).
      const times = applied.map((a) => a.startedAt.getTime());
      const [from, to] = [new Date(Math.min(...times)), new Date(Math.max(...times))];
      // An amendment written after the confirmed version keeps the row pending (its version is higher).
      await db.$executeRaw`
        UPDATE usage_ledger AS l
           SET gate_applied_version = GREATEST(l.gate_applied_version, v.version),
               gate_pending_since = CASE WHEN GREATEST(l.gate_applied_version, v.version) >= l.settle_version THEN NULL ELSE l.gate_pending_since END
          FROM (SELECT id, max(version) AS version FROM unnest(${ids}::uuid[], ${versions}::int[]) AS u(id, version) GROUP BY id) AS v
         WHERE l.request_id = v.id AND l.started_at BETWEEN ${from} AND ${to}`;
    },

    async oldestPendingMs() {
      const rows = await db.$queryRaw<{ age_ms: number | null }[]>`
        SELECT (EXTRACT(EPOCH FROM now() - min(gate_pending_since)) * 1000)::float8 AS age_ms FROM usage_ledger WHERE gate_pending_since IS NOT NULL`;
      return Math.max(0, Math.round(rows[0]?.age_ms ?? 0));
    },

    async amend(requestId, own) {
      // SET expressions read the row's values before the update: the added amount is own minus first settlement.
      const rows = await db.$queryRaw<{ tenant_id: string; started_at: Date; amended_micros: bigint; amended_tokens: number }[]>`
        UPDATE usage_ledger
           SET settle_version = 2,
               amended_micros = GREATEST(${own.costMicros}::bigint - cost_micros, 0),
               amended_tokens = GREATEST(${own.tokens}::int - (prompt_tokens + completion_tokens), 0),
               cost_micros = GREATEST(cost_micros, ${own.costMicros}::bigint),
               completion_tokens = GREATEST(completion_tokens, ${own.completionTokens}::int),
               gate_pending_since = now()
         WHERE request_id = ${requestId}::uuid AND state = 'SETTLED' AND settle_version = 1
           AND (cost_micros < ${own.costMicros}::bigint OR prompt_tokens + completion_tokens < ${own.tokens}::int)
        RETURNING tenant_id, started_at, amended_micros, amended_tokens`;
      const r = rows[0];
      return r ? { tenantId: r.tenant_id, startedAt: r.started_at, amendedMicros: r.amended_micros, amendedTokens: r.amended_tokens } : null;
    },

    async monthSettled(tenantId, start, end) {
      const rows = await db.$queryRaw<{ spent: bigint | null; pending: bigint }[]>`
        SELECT (sum(cost_micros) FILTER (WHERE state = 'SETTLED'))::bigint AS spent,
               count(*) FILTER (WHERE gate_pending_since IS NOT NULL) AS pending
          FROM usage_ledger
         WHERE tenant_id = ${tenantId}::uuid AND started_at >= ${start} AND started_at < ${end}`;
      return { spentMicros: rows[0]?.spent ?? 0n, pending: Number(rows[0]?.pending ?? 0) };
    },

    async monthSettledByKey(tenantId, start, end) {
      const rows = await db.$queryRaw<{ key: string; spent: bigint | null; pending: bigint }[]>`
        SELECT api_key_id::text AS key, (sum(cost_micros) FILTER (WHERE state = 'SETTLED'))::bigint AS spent,
               count(*) FILTER (WHERE gate_pending_since IS NOT NULL) AS pending
          FROM usage_ledger
         WHERE tenant_id = ${tenantId}::uuid AND started_at >= ${start} AND started_at < ${end} AND api_key_id IS NOT NULL
         GROUP BY api_key_id`;
      return new Map(rows.map((r) => [r.key, { spentMicros: r.spent ?? 0n, pending: Number(r.pending) }]));
    },
  };
}

/** Settled rows the gate has not confirmed, oldest first: what the applier re-applies. */
async function pendingRows(db: Db, olderThanMs: number, limit: number): Promise<PendingSettlement[]> {
  const rows = await db.$queryRaw<
    {
      request_id: string;
      tenant_id: string;
      api_key_id: string | null;
      started_at: Date;
      settle_version: number;
      gate_applied_version: number;
      cost_micros: bigint;
      amended_micros: bigint;
      tokens: number;
      amended_tokens: number;
    }[]
  >`
      SELECT request_id, tenant_id, api_key_id, started_at, settle_version, gate_applied_version, cost_micros, amended_micros,
             prompt_tokens + completion_tokens AS tokens, amended_tokens
        FROM usage_ledger
       WHERE gate_pending_since < now() - ${olderThanMs} * interval '1 millisecond'
       ORDER BY gate_pending_since
       LIMIT ${limit}`;
  return rows.map((r) => ({
    requestId: r.request_id,
    tenantId: r.tenant_id,
    apiKeyId: r.api_key_id,
    startedAt: r.started_at,
    settleVersion: r.settle_version,
    gateAppliedVersion: r.gate_applied_version,
    costMicros: r.cost_micros,
    amendedMicros: r.amended_micros,
    tokens: Number(r.tokens),
    amendedTokens: r.amended_tokens,
  }));
}
