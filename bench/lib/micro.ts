import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool } from '../../src/infra/postgres';
import { createRedis, waitReady } from '../../src/infra/redis';
import { makeLimiter } from '../../src/limits';
import { makeLedger, type Settlement } from '../../src/accounting/ledger';
import { monthOf } from '../../src/accounting/period';
import type { Progress } from './progress';
import { round, roundSummary, Samples, type Summary } from './stats';

export interface MicroResult {
  /** One operation at a time, in this process, against the real Redis and Postgres. */
  readonly ops: Record<string, { n: number; opsPerSecond: number; ms: Summary }>;
  readonly postgresSynchronousCommit: string;
}

const PRICES = { 'deepseek-v4-flash': { inputMicrosPerMillion: null, outputMicrosPerMillion: 250_000n } };

/**
 * The parts alone, as the gateway calls them for one request: the admission Lua call, its settlement, the
 * write-ahead insert (ledger.hold) and the ledger settlement; plus a bare Redis PING and Postgres SELECT 1 as
 * the round-trip floor. Each for about `seconds`, sequentially.
 */
export async function microBench(o: {
  databaseUrl: string;
  redisUrl: string;
  tenantId: string;
  apiKeyId: string | null;
  seconds: number;
  progress: Progress;
}): Promise<MicroResult> {
  const redis = createRedis(o.redisUrl, { name: 'llm-gateway-bench' });
  const db = createPrisma(o.databaseUrl, { max: 2 });
  const sql = createSqlPool(o.databaseUrl, { max: 2 });
  try {
    await waitReady(redis);
    const limiter = makeLimiter(redis);
    const ledger = makeLedger(db, sql);
    const month = monthOf(new Date());
    const sync = await db.$queryRawUnsafe<Array<{ synchronous_commit: string }>>('SHOW synchronous_commit');
    // The gate's month state exists once the tenant was admitted through the gateway; seed it if not.
    await limiter.reseed({ tenantId: o.tenantId, month, spentMicros: 0n, holds: [] });

    const ops: MicroResult['ops'] = {};
    const timed = async (name: string, n: number | null, f: (i: number) => Promise<unknown>): Promise<number> => {
      for (let i = 0; i < 50; i++) await f(-1 - i); // warm-up, not recorded
      const s = new Samples();
      const until = performance.now() + o.seconds * 1000;
      let i = 0;
      const t0 = performance.now();
      while (n === null ? performance.now() < until : i < n) {
        const t = performance.now();
        await f(i++);
        s.push(performance.now() - t);
        if (i % 200 === 0) o.progress.status(`parts: ${name} ${i} ops`);
      }
      const elapsed = (performance.now() - t0) / 1000;
      ops[name] = { n: s.length, opsPerSecond: round(s.length / elapsed, 0), ms: roundSummary(s.summary(), 4) };
      o.progress.log(`  ${name.padEnd(30)} n=${s.length} p50 ${ops[name]!.ms.p50.toFixed(3)} ms p99 ${ops[name]!.ms.p99.toFixed(3)} ms`);
      return s.length;
    };

    await timed('redis PING (floor)', null, () => redis.ping());
    await timed('postgres SELECT 1 (floor)', null, () => db.$queryRaw`SELECT 1`);

    const admitted: string[] = [];
    const warm: string[] = [];
    const gate = (requestId: string) => ({
      tenantId: o.tenantId,
      requestId,
      month,
      requestsPerMinute: 2_000_000_000,
      tokensPerMinute: 2_000_000_000,
      tokensEstimate: 1043,
      budgetMicros: 1_000_000_000_000n,
      holdMicros: 257n,
      holdTtlMs: 390_000,
    });
    const n = await timed('admission (limiter.admit, Lua)', null, async (i) => {
      const id = randomUUID();
      const r = await limiter.admit(gate(id));
      if (!r.allowed) throw new Error(`admit refused: ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
      (i < 0 ? warm : admitted).push(id);
    });
    const settleInput = (requestId: string) => ({ tenantId: o.tenantId, requestId, month, actualMicros: 38n, actualTokens: 169, tokensEstimate: 1043 });
    await timed('settlement (limiter.settle, Lua)', n, (i) => limiter.settle(settleInput(i < 0 ? warm[-1 - i]! : admitted[i]!)));

    const held: { id: string; startedAt: Date }[] = [];
    const warmHeld: { id: string; startedAt: Date }[] = [];
    const m = await timed('write-ahead insert (ledger.hold)', null, async (i) => {
      const id = randomUUID();
      const startedAt = new Date();
      await ledger.hold({
        requestId: id,
        tenantId: o.tenantId,
        apiKeyId: o.apiKeyId,
        profile: 'chat_default',
        region: 'US_EAST',
        plannedModel: 'deepseek-v4-flash',
        maxTokens: 1024,
        promptTokensEstimate: 19,
        prices: PRICES,
        holdMicros: 257n,
        startedAt,
        leaseMs: 30_000,
        idempotencyKey: null,
      });
      (i < 0 ? warmHeld : held).push({ id, startedAt });
    });
    const settlement = (startedAt: Date): Settlement => ({
      startedAt,
      model: 'deepseek-v4-flash',
      attempts: [{ model: 'deepseek-v4-flash', ok: true, error: null, latencyMs: 3, promptTokens: 19, completionTokens: 150, usageSource: 'PROVIDER' }],
      promptTokens: 19,
      completionTokens: 150,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      unpricedPromptTokens: 19,
      prices: PRICES['deepseek-v4-flash'],
      costMicros: 38n,
      outcome: 'COMPLETED',
      usageSource: 'PROVIDER',
      endedAt: new Date(),
    });
    await timed('ledger settlement (ledger.settle)', m, (i) => {
      const h = i < 0 ? warmHeld[-1 - i]! : held[i]!;
      return ledger.settle(h.id, settlement(h.startedAt));
    });
    return { ops, postgresSynchronousCommit: sync[0]?.synchronous_commit ?? 'unknown' };
  } finally {
    redis.disconnect();
    await sql.end();
    await db.$disconnect();
  }
}
