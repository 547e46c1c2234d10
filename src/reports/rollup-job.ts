import { Prisma } from '../../generated/prisma/client';
import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { DAY_MS, DEFAULT_RECHECK_DAYS, DEFAULT_ROLLUP_LAG_MS, dayKey, utcDayStart } from './day-plan';

export interface RollupJobDeps {
  readonly db: Db;
  readonly now?: () => Date;
  /** A day is closed once now >= its end + this (default 10 minutes). */
  readonly safetyLagMs?: number;
  /** Closed days this recent are re-verified against the ledger on every run (default 35). Older days are computed once. */
  readonly recheckDays?: number;
  readonly logger?: Pick<Logger, 'error' | 'info'>;
}

export interface RollupJob {
  /** One pass; returns how many days it (re)computed. Calls are serialised: a call waits for the one running. */
  runOnce(): Promise<{ days: number }>;
  /** Runs a pass now and then every intervalMs (the timer does not keep the process alive). Errors are logged. */
  start(intervalMs: number): void;
  /** Stops the timer and waits for a running pass, which ends after the day it is computing. */
  stop(): Promise<void>;
}

/** Advisory-lock namespace of the job ('roll'); the second key is the day number since 1970-01-01, or -1 for the scan. */
const LOCK_NS = 0x726f6c6c;

/**
 * Keeps daily_rollups exactly in step with the ledger for closed days, by idempotent recomputation:
 *
 * - A day is closed once now >= its end + safetyLagMs and it holds no HELD row (a request still running, or dead
 *   and not yet reaped, could still settle into it). Rows are immutable once SETTLED and new rows start "now", so a
 *   closed day's settled rows no longer change, given instance clocks within the lag of each other.
 * - Each pass picks (a) every closed day of the last `recheckDays` whose per-day totals (requests, the three token
 *   sums, cost) differ between the ledger and the rollups, or that rollup_days does not list, and (b) every older
 *   day that holds ledger rows and that rollup_days does not list (first deployment, or a day that kept a HELD row
 *   for the whole window). Older computed days are not re-verified: rows that old no longer change. Nothing keys on a high-water mark of id or
 *   time, so a row that commits out of order (or a late write to a closed day) is picked up by (a) on the next pass.
 * - Each day is recomputed in its own transaction: DELETE the day, INSERT ... SELECT ... GROUP BY from the SETTLED
 *   rows, upsert rollup_days. A transaction-scoped advisory lock per day lets instances run the job at once (one
 *   skips a day another is computing); recomputing an already correct day is harmless.
 * - Settlement never touches a rollup: no hot row per tenant-day-model.
 *
 * Reports read a day from the rollups only when rollup_days lists it; every other day is read raw (exact).
 */
export function makeRollupJob(deps: RollupJobDeps): RollupJob {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  const lagMs = deps.safetyLagMs ?? DEFAULT_ROLLUP_LAG_MS;
  const recheckDays = deps.recheckDays ?? DEFAULT_RECHECK_DAYS;

  async function candidateDays(q: RawQuery): Promise<Date[]> {
    const closedBefore = new Date(utcDayStart(now().getTime() - lagMs));
    const windowStart = new Date(closedBefore.getTime() - recheckDays * DAY_MS);
    const recent = await recentDaysToCompute(q, windowStart, closedBefore);
    const older = await olderDaysToCompute(q, windowStart);
    return [...older, ...recent].map((r) => new Date(`${r.day}T00:00:00.000Z`)).sort((a, b) => a.getTime() - b.getTime());
  }

  /**
   * The candidate scan reads every row of the recheck window, so only one instance runs it at a time: the others
   * skip this pass (their next pass, or this instance's, picks up whatever is left).
   */
  async function candidatesUnlessBusy(): Promise<Date[]> {
    return db.$transaction(
      async (tx) => {
        const [lock] = await tx.$queryRaw<{ ok: boolean }[]>`SELECT pg_try_advisory_xact_lock(${LOCK_NS}::int, -1) AS ok`;
        return lock?.ok ? candidateDays(tx) : [];
      },
      { maxWait: 10_000, timeout: 120_000 },
    );
  }

  let timer: NodeJS.Timeout | null = null;
  let stopped = true;
  let chain: Promise<unknown> = Promise.resolve();
  /** A timer's pass ends between two days once stop() is called, so shutdown waits for one day at most. */
  const pass = (fromTimer: boolean): Promise<{ days: number }> => {
    const run = chain.then(async () => {
      let days = 0;
      for (const d of await candidatesUnlessBusy()) {
        if (fromTimer && stopped) break;
        if (await computeDay(db, d)) days++;
      }
      return { days };
    });
    chain = run.catch(() => undefined);
    return run;
  };
  const runOnce = () => pass(false);

  const tick = (intervalMs: number) => {
    pass(true)
      .then((r) => r.days > 0 && deps.logger?.info({ days: r.days }, 'rollup: days recomputed'))
      .catch((err: unknown) => deps.logger?.error({ err }, 'rollup pass failed; the next pass retries'))
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(() => tick(intervalMs), intervalMs);
        timer.unref();
      });
  };

  return {
    runOnce,
    start(intervalMs) {
      if (!stopped) return;
      stopped = false;
      tick(intervalMs);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await chain;
    },
  };
}

type RawQuery = Pick<Db, '$queryRaw'>;

/** Recomputes one day; false when another instance holds it or a HELD row remains. */
async function computeDay(db: Db, day: Date): Promise<boolean> {
  const start = day;
  const end = new Date(day.getTime() + DAY_MS);
  const key = dayKey(day);
  return db.$transaction(
    async (tx) => {
      const [lock] = await tx.$queryRaw<{ ok: boolean }[]>`SELECT pg_try_advisory_xact_lock(${LOCK_NS}::int, ${Math.round(day.getTime() / DAY_MS)}::int) AS ok`;
      if (!lock?.ok) return false;
      // A month whose ledger partition retention dropped keeps its rollups as its only record: never recomputed.
      const [held] = await tx.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) + (SELECT count(*) FROM ledger_archived_months a WHERE a.month = date_trunc('month', ${key}::date)::date) AS n
          FROM usage_ledger WHERE state = 'HELD' AND started_at >= ${start} AND started_at < ${end}`;
      if (!held || held.n > 0n) return false;
      await tx.$executeRaw`DELETE FROM daily_rollups WHERE day = ${key}::date`;
      await tx.$executeRaw`
        INSERT INTO daily_rollups (tenant_id, day, model, profile, api_key_id, requests, prompt_tokens,
                                   unpriced_prompt_tokens, completion_tokens, cost_micros, cached_prompt_tokens,
                                   cache_write_tokens, computed_at)
        SELECT tenant_id, ${key}::date, coalesce(model, ''), profile, coalesce(api_key_id::text, ''), count(*),
               sum(prompt_tokens), sum(unpriced_prompt_tokens), sum(completion_tokens), sum(cost_micros),
               sum(cached_prompt_tokens), sum(cache_write_tokens), now()
          FROM usage_ledger
         WHERE state = 'SETTLED' AND started_at >= ${start} AND started_at < ${end}
         GROUP BY tenant_id, coalesce(model, ''), profile, coalesce(api_key_id::text, '')`;
      await tx.$executeRaw`
        INSERT INTO rollup_days (day, computed_at) VALUES (${key}::date, now())
        ON CONFLICT (day) DO UPDATE SET computed_at = excluded.computed_at`;
      return true;
    },
    { maxWait: 10_000, timeout: 120_000 },
  );
}

/**
 * Closed days of the recheck window whose per-day totals differ between the ledger and the rollups, or that
 * rollup_days does not list; never a day that still holds a HELD row.
 */
function recentDaysToCompute(q: RawQuery, windowStart: Date, closedBefore: Date): Promise<{ day: string }[]> {
  const cbKey = dayKey(closedBefore);
  const wsKey = dayKey(windowStart);
  // Days are handled as 'YYYY-MM-DD' text on the way in and out: no conversion depends on the session time zone.
  return q.$queryRaw<{ day: string }[]>(Prisma.sql`
    WITH raw AS (
      SELECT (started_at AT TIME ZONE 'UTC')::date AS day,
             count(*) FILTER (WHERE state = 'SETTLED') AS requests,
             coalesce(sum(prompt_tokens) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS prompt,
             coalesce(sum(unpriced_prompt_tokens) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS unpriced,
             coalesce(sum(completion_tokens) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS completion,
             coalesce(sum(cached_prompt_tokens) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS cached,
             coalesce(sum(cache_write_tokens) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS written,
             coalesce(sum(cost_micros) FILTER (WHERE state = 'SETTLED'), 0)::bigint AS cost,
             count(*) FILTER (WHERE state = 'HELD') AS held
        FROM usage_ledger
       WHERE started_at >= ${windowStart} AND started_at < ${closedBefore}
       GROUP BY 1
    ), roll AS (
      SELECT day, sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt,
             sum(unpriced_prompt_tokens)::bigint AS unpriced, sum(completion_tokens)::bigint AS completion,
             sum(cached_prompt_tokens)::bigint AS cached, sum(cache_write_tokens)::bigint AS written,
             sum(cost_micros)::bigint AS cost
        FROM daily_rollups
       WHERE day >= ${wsKey}::date AND day < ${cbKey}::date
       GROUP BY day
    )
    SELECT to_char(coalesce(raw.day, roll.day), 'YYYY-MM-DD') AS day
      FROM raw FULL JOIN roll ON roll.day = raw.day
      LEFT JOIN rollup_days rd ON rd.day = coalesce(raw.day, roll.day)
     WHERE coalesce(raw.held, 0) = 0
       AND (rd.day IS NULL
            OR (raw.requests, raw.prompt, raw.unpriced, raw.completion, raw.cached, raw.written, raw.cost)
               IS DISTINCT FROM (roll.requests, roll.prompt, roll.unpriced, roll.completion, roll.cached, roll.written, roll.cost))`);
}

/** Days before the window that hold ledger rows and that rollup_days does not list (computed once). */
function olderDaysToCompute(q: RawQuery, windowStart: Date): Promise<{ day: string }[]> {
  // Older days: computed once. Which of them hold rows is found by walking each tenant's (tenant_id, started_at)
  // index from one day with rows to the next (a loose index scan): one index probe per tenant and day with rows.
  return q.$queryRaw<{ day: string }[]>(Prisma.sql`
    WITH RECURSIVE walk(tenant_id, day) AS (
      SELECT t.id, (SELECT (min(l.started_at) AT TIME ZONE 'UTC')::date FROM usage_ledger l
                     WHERE l.tenant_id = t.id AND l.started_at < ${windowStart})
        FROM tenants t
      UNION ALL
      SELECT w.tenant_id, (SELECT (min(l.started_at) AT TIME ZONE 'UTC')::date FROM usage_ledger l
                            WHERE l.tenant_id = w.tenant_id AND l.started_at >= ((w.day + 1)::timestamp AT TIME ZONE 'UTC')
                              AND l.started_at < ${windowStart})
        FROM walk w
       WHERE w.day IS NOT NULL
    )
    SELECT DISTINCT to_char(w.day, 'YYYY-MM-DD') AS day
      FROM walk w
     WHERE w.day IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rollup_days rd WHERE rd.day = w.day)`);
}
