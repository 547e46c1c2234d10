import type { Db } from '../infra/prisma';
import type { SqlPool } from '../infra/postgres';
import type { Region } from '../catalog/types';
import type { UnitPrices } from './pricing';
import { makeGroupCommit } from './group-commit';
import { insertHolds, updateSettlements, type SettleItem } from './ledger-writes';
import { checkHeldEntry, uuidArg } from './ledger-checks';
import type { Micros } from './money';
import type { AttemptRecord, UsageSource } from '../routing';

export type Outcome = 'COMPLETED' | 'CLIENT_CANCELLED' | 'UPSTREAM_INTERRUPTED' | 'TIMEOUT' | 'FAILED' | 'SHUTDOWN' | 'SUSPENDED';

/** Unit prices of every model of a request's chain, as in force at admission. Stored as strings (JSON has no bigint). */
export type PriceSnapshot = Readonly<Record<string, UnitPrices>>;

export interface HeldEntry {
  readonly requestId: string;
  readonly tenantId: string;
  readonly apiKeyId: string | null;
  readonly profile: string;
  readonly region: Region;
  readonly plannedModel: string;
  readonly maxTokens: number;
  /** Estimated until settlement; the reaper bills a dead request's prompt with it. */
  readonly promptTokensEstimate: number;
  readonly prices: PriceSnapshot;
  readonly holdMicros: Micros;
  readonly startedAt: Date;
  readonly leaseMs: number;
  readonly idempotencyKey: string | null;
}

/** One attempt as the router recorded it, with the tokens it consumed; stored in the row's attempts column. */
export type StoredAttempt = AttemptRecord;

export interface Settlement {
  /** The row's started_at, its partition key: the UPDATE then touches one month's partition only. */
  readonly startedAt: Date;
  readonly model: string | null;
  readonly attempts: readonly StoredAttempt[];
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Of promptTokens: read from the provider's prompt cache / written to it. */
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
  readonly unpricedPromptTokens: number;
  readonly prices: UnitPrices | null;
  readonly costMicros: Micros;
  readonly outcome: Outcome;
  readonly usageSource: UsageSource;
  readonly endedAt: Date;
}

type SnapshotJson = Record<string, { input: string | null; output: string | null; cachedInput?: string | null; cacheWrite?: string | null }>;

const str = (v: Micros | null | undefined): string | null => v?.toString() ?? null;
const big = (v: string | null | undefined): Micros | null => (v === null || v === undefined ? null : BigInt(v));

export function snapshotToJson(s: PriceSnapshot): SnapshotJson {
  return Object.fromEntries(
    Object.entries(s).map(([m, p]) => [
      m,
      {
        input: str(p.inputMicrosPerMillion),
        output: str(p.outputMicrosPerMillion),
        cachedInput: str(p.cachedInputMicrosPerMillion),
        cacheWrite: str(p.cacheWriteMicrosPerMillion),
      },
    ]),
  );
}

/** Rows written before cache prices existed have no cachedInput / cacheWrite: they read as null (input price applies). */
export function snapshotFromJson(j: unknown): PriceSnapshot {
  const out: Record<string, UnitPrices> = {};
  for (const [m, p] of Object.entries((j ?? {}) as SnapshotJson)) {
    out[m] = {
      inputMicrosPerMillion: big(p.input),
      outputMicrosPerMillion: big(p.output),
      cachedInputMicrosPerMillion: big(p.cachedInput),
      cacheWriteMicrosPerMillion: big(p.cacheWrite),
    };
  }
  return out;
}

export interface MonthState {
  readonly spentMicros: Micros;
  readonly holds: { requestId: string; holdMicros: Micros; startedAtMs: number; apiKeyId: string | null }[];
  readonly recentlySettled: { requestId: string; costMicros: Micros }[];
  /** The settled sum per API key (rows without a key are in spentMicros only). */
  readonly spentByApiKey: Map<string, Micros>;
}

/** Requests admitted in the last minute and their admission token estimates. */
export interface MinuteUse {
  readonly requests: number;
  readonly tokens: number;
}

/**
 * A reservation whose write-ahead row is not in the ledger this long after it was made is an orphan (its INSERT
 * failed and so did its release, e.g. Postgres and Redis both cut): the reconciler releases it. A request whose INSERT
 * returns later than half of this re-admits before calling the upstream, so a release never hits a live request.
 */
export const WRITE_AHEAD_DEADLINE_MS = 10_000;

export interface Ledger {
  /** The write-ahead row, state HELD, before the upstream is called. */
  hold(e: HeldEntry): Promise<void>;
  /** Grows (or, with a negative amount, shrinks back) a running request's recorded hold, so a reseed restores it whole. */
  adjustHold(requestId: string, deltaMicros: Micros): Promise<void>;
  /** Deletes the HELD row of a request the gate refused: it never reached the upstream, so it leaves no row. */
  discard(requestId: string): Promise<void>;
  /**
   * Settles a HELD row as version 1, pending for the gate until GateApplier confirms it reached Redis; true exactly
   * once per request id (false when the reaper or another path settled it first).
   */
  settle(requestId: string, s: Settlement): Promise<boolean>;
  /**
   * This month's settled sum, open holds, and the rows settled within the last `recentMs` (already in the sum), for
   * reseeding the budget gate. One statement, so one snapshot: a row settling meanwhile is in the sum or a hold,
   * never neither nor both.
   */
  monthState(tenantId: string, start: Date, end: Date, recentMs: number): Promise<MonthState>;
  /** Requests admitted in the last minute and their admission token estimates, to reseed the rate limits. */
  lastMinute(tenantId: string): Promise<MinuteUse & { byApiKey: Map<string, MinuteUse> }>;
}

/**
 * `sql` carries the two per-request statements (hold, settle), each group-committed: concurrent requests' rows go as
 * one statement per flush (see group-commit.ts). The rest goes through Prisma.
 */
export function makeLedger(db: Db, sql: SqlPool): Ledger {
  const holds = makeGroupCommit<HeldEntry, void>({ write: (entries) => insertHolds(sql, entries) });
  const settlements = makeGroupCommit<SettleItem, boolean>({ write: (items) => updateSettlements(sql, items) });
  return {
    async hold(e) {
      await holds.submit(checkHeldEntry(e));
    },

    async settle(requestId, s) {
      return settlements.submit({ requestId: uuidArg('requestId', requestId), s });
    },

    async adjustHold(requestId, deltaMicros) {
      await db.ledgerEntry.updateMany({ where: { requestId, state: 'HELD' }, data: { holdMicros: { increment: deltaMicros } } });
    },

    async discard(requestId) {
      await db.ledgerEntry.deleteMany({ where: { requestId, state: 'HELD' } });
    },

    async lastMinute(tenantId) {
      // An upper bound as well: the later months' partitions are pruned.
      const rows = await db.$queryRaw<{ key: string | null; n: bigint; tokens: bigint | null }[]>`
        SELECT api_key_id::text AS key, count(*) AS n, sum(prompt_tokens + max_tokens) AS tokens
          FROM usage_ledger WHERE tenant_id = ${tenantId}::uuid AND started_at > now() - interval '1 minute'
           AND started_at < now() + interval '1 hour'
         GROUP BY api_key_id`;
      const byApiKey = new Map<string, MinuteUse>();
      let requests = 0;
      let tokens = 0;
      for (const r of rows) {
        const use = { requests: Number(r.n), tokens: Number(r.tokens ?? 0) };
        requests += use.requests;
        tokens += use.tokens;
        if (r.key !== null) byApiKey.set(r.key, use);
      }
      return { requests, tokens, byApiKey };
    },

    async monthState(tenantId, start, end, recentMs) {
      // One snapshot: the rows still held or recently settled, then the settled sum per API key (NULL: keyless).
      const rows = await db.$queryRaw<{ id: string | null; held: boolean; micros: bigint | null; started_at: Date | null; key: string | null }[]>`
        SELECT request_id::text AS id, state = 'HELD' AS held,
               CASE WHEN state = 'HELD' THEN hold_micros ELSE cost_micros END AS micros, started_at, api_key_id::text AS key
          FROM usage_ledger
         WHERE tenant_id = ${tenantId}::uuid AND started_at >= ${start} AND started_at < ${end}
           AND (state = 'HELD' OR ended_at > now() - make_interval(secs => ${recentMs / 1000}))
        UNION ALL
        SELECT NULL, false, coalesce(sum(cost_micros), 0)::bigint, NULL, api_key_id::text
          FROM usage_ledger
         WHERE tenant_id = ${tenantId}::uuid AND state = 'SETTLED' AND started_at >= ${start} AND started_at < ${end}
         GROUP BY api_key_id`;
      let spentMicros = 0n;
      const spentByApiKey = new Map<string, Micros>();
      const holds: MonthState['holds'] = [];
      const recentlySettled: MonthState['recentlySettled'] = [];
      for (const r of rows) {
        if (r.id === null) {
          spentMicros += r.micros ?? 0n;
          if (r.key !== null) spentByApiKey.set(r.key, r.micros ?? 0n);
        } else if (r.held) holds.push({ requestId: r.id, holdMicros: r.micros ?? 0n, startedAtMs: r.started_at!.getTime(), apiKeyId: r.key });
        else recentlySettled.push({ requestId: r.id, costMicros: r.micros ?? 0n });
      }
      return { spentMicros, holds, recentlySettled, spentByApiKey };
    },
  };
}
