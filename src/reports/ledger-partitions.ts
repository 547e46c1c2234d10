import { Prisma } from '../../generated/prisma/client';
import { periodic, type Periodic } from '../infra/periodic';
import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { monthOf, monthRange } from '../accounting/period';
import { DEFAULT_ROLLUP_LAG_MS, DEFAULT_RECHECK_DAYS, DAY_MS } from './day-plan';

/**
 * The ledger's month partitions (see the migration ledger_partitioned_by_month): created ahead of need, and, with
 * LEDGER_RETENTION_MONTHS, dropped once they are old enough and their rollups are proven equal to their rows.
 * Every instance runs this job: creation is idempotent under an advisory lock (ledger_create_month), and a drop
 * runs in one transaction that a second instance finds already done.
 */
export interface LedgerPartitions {
  /** Creates the partitions of this month and the next `AHEAD_MONTHS`; returns the months it created. */
  ensureAhead(): Promise<string[]>;
  /** Drops the partitions past retention whose rollups match them; returns the months dropped ('YYYY-MM'). */
  dropExpired(): Promise<string[]>;
  start(intervalMs: number): void;
  stop(): Promise<void>;
}

/** Months created ahead of the current one: a pass that fails for weeks still leaves requests a partition. */
const AHEAD_MONTHS = 2;
const PARTITION = /^usage_ledger_(\d{4})_(\d{2})$/;

const addMonths = (month: string, n: number): string => {
  const { start } = monthRange(month);
  return monthOf(new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + n, 1)));
};

/** What the partition job works with. */
interface PartitionDeps {
  readonly db: Db;
  /** Null: keep every month. N: keep the current month and the N before it. */
  readonly retentionMonths: number | null;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  readonly now: () => Date;
}

export function makeLedgerPartitions(opts: Omit<PartitionDeps, 'now'> & { now?: () => Date }): LedgerPartitions {
  const deps: PartitionDeps = { ...opts, now: opts.now ?? (() => new Date()) };
  let job: Periodic | null = null;
  const pass = async () => {
    await ensureAhead(deps);
    await dropExpired(deps);
  };
  return {
    ensureAhead: () => ensureAhead(deps),
    dropExpired: () => dropExpired(deps),
    start(intervalMs) {
      job ??= periodic(pass, intervalMs, (e) => deps.logger.error({ err: e }, 'ledger partition pass failed; the next pass retries'));
      job.start();
    },
    async stop() {
      await job?.stop();
    },
  };
}

async function ensureAhead(deps: PartitionDeps): Promise<string[]> {
  const created: string[] = [];
  const current = monthOf(deps.now());
  for (let i = 0; i <= AHEAD_MONTHS; i++) {
    const month = addMonths(current, i);
    const [r] = await deps.db.$queryRaw<{ created: boolean }[]>`SELECT ledger_create_month(${monthRange(month).start}::timestamptz) AS created`;
    if (r?.created) created.push(month);
  }
  if (created.length > 0) deps.logger.info({ months: created }, 'ledger partitions created');
  return created;
}

/**
 * A month may go once it is older than retention AND older than the rollup job's re-check window (which would
 * otherwise find its days empty in the ledger and recompute them from nothing).
 */
async function expiredMonths(deps: PartitionDeps): Promise<string[]> {
  if (deps.retentionMonths === null) return [];
  const keepFrom = addMonths(monthOf(deps.now()), -deps.retentionMonths);
  const recheckFrom = deps.now().getTime() - DEFAULT_ROLLUP_LAG_MS - (DEFAULT_RECHECK_DAYS + 1) * DAY_MS;
  const rows = await deps.db.$queryRaw<{ name: string }[]>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'usage_ledger'::regclass ORDER BY c.relname`;
  return rows
    .map((r) => PARTITION.exec(r.name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}-${m[2]}`)
    .filter((month) => month < keepFrom && monthRange(month).end.getTime() <= recheckFrom);
}

async function dropExpired(deps: PartitionDeps): Promise<string[]> {
  const dropped: string[] = [];
  for (const month of await expiredMonths(deps)) {
    if (await dropMonth(deps, month)) dropped.push(month);
  }
  if (dropped.length > 0) deps.logger.info({ months: dropped, retentionMonths: deps.retentionMonths }, 'ledger months past retention dropped');
  return dropped;
}

/**
 * One month, in one transaction: writes to it are blocked (SHARE lock on its partition), every day with rows must
 * be a computed rollup day whose per-tenant requests, tokens and cost equal the settled rows', and no row may be
 * HELD; then the month is recorded as archived, its request ids deleted and its partition dropped. Anything off:
 * nothing is dropped, and the error says which day.
 */
async function dropMonth(deps: PartitionDeps, month: string): Promise<boolean> {
  const { start, end } = monthRange(month);
  const table = Prisma.raw(`"usage_ledger_${month.replace('-', '_')}"`);
  return deps.db.$transaction(
    async (tx) => {
      // Never queue the whole ledger behind this: a busy moment just postpones the drop to the next pass.
      await tx.$executeRaw`SET LOCAL lock_timeout = '5s'`;
      await tx.$executeRaw`LOCK TABLE ${table} IN SHARE MODE`;
      const bad = await tx.$queryRaw<{ day: string }[]>`
        WITH l AS (
          SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date AS day, count(*) FILTER (WHERE state = 'HELD') AS held,
                 count(*) FILTER (WHERE state = 'SETTLED') AS requests,
                 coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE state = 'SETTLED'), 0) AS tokens,
                 coalesce(sum(cost_micros) FILTER (WHERE state = 'SETTLED'), 0) AS cost
            FROM ${table} GROUP BY 1, 2
        ), r AS (
          SELECT tenant_id, day, sum(requests) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost_micros) AS cost
            FROM daily_rollups WHERE day >= ${month + '-01'}::date AND day < ${monthOf(end) + '-01'}::date GROUP BY 1, 2
        )
        SELECT to_char(l.day, 'YYYY-MM-DD') AS day FROM l LEFT JOIN r USING (tenant_id, day)
         WHERE l.held > 0 OR (l.requests, l.tokens, l.cost) IS DISTINCT FROM (r.requests, r.tokens, r.cost)
            OR NOT EXISTS (SELECT 1 FROM rollup_days d WHERE d.day = l.day)
         LIMIT 1`;
      if (bad.length > 0) {
        deps.logger.warn({ month, day: bad[0]!.day }, 'ledger month past retention kept: its rollups are missing or differ from its rows');
        return false;
      }
      await tx.$executeRaw`
        INSERT INTO ledger_archived_months (month, requests, cost_micros)
        SELECT ${month + '-01'}::date, count(*), coalesce(sum(cost_micros), 0) FROM ${table}`;
      await tx.$executeRaw`DELETE FROM ledger_request_ids WHERE started_at >= ${start} AND started_at < ${end}`;
      await tx.$executeRaw`DROP TABLE ${table}`;
      return true;
    },
    { maxWait: 10_000, timeout: 600_000 },
  );
}
