import type { Db } from '../infra/prisma';
import type { Region } from '../catalog/types';
import type { UnitPrices } from './pricing';
import type { Micros } from './money';
import type { AttemptRecord } from '../routing';

export type Outcome = 'COMPLETED' | 'CLIENT_CANCELLED' | 'UPSTREAM_INTERRUPTED' | 'TIMEOUT' | 'FAILED';
export type UsageSource = 'PROVIDER' | 'ESTIMATED';

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
  readonly model: string | null;
  readonly attempts: readonly StoredAttempt[];
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly unpricedPromptTokens: number;
  readonly prices: UnitPrices | null;
  readonly costMicros: Micros;
  readonly outcome: Outcome;
  readonly usageSource: UsageSource;
  readonly endedAt: Date;
}

export function snapshotToJson(s: PriceSnapshot): Record<string, { input: string | null; output: string | null }> {
  return Object.fromEntries(
    Object.entries(s).map(([m, p]) => [m, { input: p.inputMicrosPerMillion?.toString() ?? null, output: p.outputMicrosPerMillion?.toString() ?? null }]),
  );
}

export function snapshotFromJson(j: unknown): PriceSnapshot {
  const out: Record<string, UnitPrices> = {};
  for (const [m, p] of Object.entries((j ?? {}) as Record<string, { input: string | null; output: string | null }>)) {
    out[m] = {
      inputMicrosPerMillion: p.input === null ? null : BigInt(p.input),
      outputMicrosPerMillion: p.output === null ? null : BigInt(p.output),
    };
  }
  return out;
}

export interface Ledger {
  /** The write-ahead row, state HELD, before the upstream is called. */
  hold(e: HeldEntry): Promise<void>;
  /** Grows (or, with a negative amount, shrinks back) a running request's recorded hold, so a reseed restores it whole. */
  adjustHold(requestId: string, deltaMicros: Micros): Promise<void>;
  /** Deletes the HELD row of a request the gate refused: it never reached the upstream, so it leaves no row. */
  discard(requestId: string): Promise<void>;
  /** Settles a HELD row; true exactly once per request id (false when the reaper or another path settled it first). */
  settle(requestId: string, s: Settlement): Promise<boolean>;
  /** This month's settled sum and open holds, for reseeding the budget gate. */
  monthState(tenantId: string, start: Date, end: Date): Promise<{ spentMicros: Micros; holds: { requestId: string; holdMicros: Micros; startedAtMs: number }[] }>;
  /** Requests admitted in the last minute and their admission token estimates, to reseed the rate limits. */
  lastMinute(tenantId: string): Promise<{ requests: number; tokens: number }>;
}

export function makeLedger(db: Db): Ledger {
  return {
    async hold(e) {
      await db.ledgerEntry.create({
        data: {
          requestId: e.requestId,
          tenantId: e.tenantId,
          apiKeyId: e.apiKeyId,
          profile: e.profile,
          region: e.region,
          plannedModel: e.plannedModel,
          maxTokens: e.maxTokens,
          promptTokens: e.promptTokensEstimate,
          priceSnapshot: snapshotToJson(e.prices),
          holdMicros: e.holdMicros,
          startedAt: e.startedAt,
          leaseExpiresAt: new Date(e.startedAt.getTime() + e.leaseMs),
          idempotencyKey: e.idempotencyKey,
        },
        select: { id: true },
      });
    },

    async adjustHold(requestId, deltaMicros) {
      await db.ledgerEntry.updateMany({ where: { requestId, state: 'HELD' }, data: { holdMicros: { increment: deltaMicros } } });
    },

    async discard(requestId) {
      await db.ledgerEntry.deleteMany({ where: { requestId, state: 'HELD' } });
    },

    async settle(requestId, s) {
      const { count } = await db.ledgerEntry.updateMany({
        where: { requestId, state: 'HELD' },
        data: {
          state: 'SETTLED',
          model: s.model,
          attempts: s.attempts as unknown as object[],
          promptTokens: s.promptTokens,
          completionTokens: s.completionTokens,
          unpricedPromptTokens: s.unpricedPromptTokens,
          inputMicrosPerMillion: s.prices?.inputMicrosPerMillion ?? null,
          outputMicrosPerMillion: s.prices?.outputMicrosPerMillion ?? null,
          costMicros: s.costMicros,
          outcome: s.outcome,
          usageSource: s.usageSource,
          endedAt: s.endedAt,
          checkpointTokens: s.completionTokens,
        },
      });
      return count === 1;
    },

    async lastMinute(tenantId) {
      const rows = await db.$queryRaw<{ n: bigint; tokens: bigint | null }[]>`
        SELECT count(*) AS n, sum(prompt_tokens + max_tokens) AS tokens
          FROM usage_ledger WHERE tenant_id = ${tenantId}::uuid AND started_at > now() - interval '1 minute'`;
      return { requests: Number(rows[0]?.n ?? 0), tokens: Number(rows[0]?.tokens ?? 0) };
    },

    async monthState(tenantId, start, end) {
      const [sum, held] = await Promise.all([
        db.ledgerEntry.aggregate({
          where: { tenantId, state: 'SETTLED', startedAt: { gte: start, lt: end } },
          _sum: { costMicros: true },
        }),
        db.ledgerEntry.findMany({
          where: { tenantId, state: 'HELD', startedAt: { gte: start, lt: end } },
          select: { requestId: true, holdMicros: true, startedAt: true },
        }),
      ]);
      return {
        spentMicros: sum._sum.costMicros ?? 0n,
        holds: held.map((h) => ({ requestId: h.requestId, holdMicros: h.holdMicros, startedAtMs: h.startedAt.getTime() })),
      };
    },
  };
}
