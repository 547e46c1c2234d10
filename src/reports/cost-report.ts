import { Prisma } from '../../generated/prisma/client';
import type { Db } from '../infra/prisma';
import { formatUsd } from '../accounting/money';
import type { MonthPlan } from './day-plan';
import { tenantSpend, withoutJit } from './spend-source';
import { toCsv } from './csv';
import { NO_MODEL_KEY, UNKNOWN_KEY, type CostReportRowView, type ReportGroup } from './types';

/** The group key of each grouping, over the columns of spendSource (fixed SQL: never built from input). */
const KEY_SQL: Readonly<Record<ReportGroup, Prisma.Sql>> = {
  MODEL: Prisma.sql`CASE WHEN s.model = '' THEN ${NO_MODEL_KEY} ELSE s.model END`,
  PROFILE: Prisma.sql`s.profile`,
  DAY: Prisma.sql`to_char(s.day, 'YYYY-MM-DD')`,
  API_KEY: Prisma.sql`CASE WHEN s.api_key_id = '' THEN ${UNKNOWN_KEY} ELSE s.api_key_id END`,
};

export const isReportGroup = (g: unknown): g is ReportGroup => typeof g === 'string' && Object.prototype.hasOwnProperty.call(KEY_SQL, g);

interface RawRow {
  key: string;
  requests: bigint;
  prompt: bigint;
  unpriced: bigint;
  cached: bigint;
  written: bigint;
  completion: bigint;
  cost: bigint;
}

const count = (v: bigint): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`report count ${v} exceeds 2^53 - 1`);
  return n;
};

/** Rows by cost, highest first; equal costs by key in code-unit order (not locale order: stable everywhere). */
function sortRows(rows: CostReportRowView[]): CostReportRowView[] {
  return rows.sort((a, b) => (a.costMicros !== b.costMicros ? (a.costMicros > b.costMicros ? -1 : 1) : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** One tenant's month, grouped, in one statement over the plan's rollup days and raw ranges (see spend-source.ts). */
export async function queryReportRows(db: Db, tenantId: string, plan: MonthPlan, groupBy: ReportGroup): Promise<CostReportRowView[]> {
  const spend = tenantSpend(plan, tenantId);
  const raw = await withoutJit<RawRow[]>(
    db,
    Prisma.sql`
    ${spend.with}
    SELECT ${KEY_SQL[groupBy]} AS key, sum(s.requests)::bigint AS requests, sum(s.prompt_tokens)::bigint AS prompt,
           sum(s.unpriced_prompt_tokens)::bigint AS unpriced, sum(s.completion_tokens)::bigint AS completion,
           sum(s.cached_prompt_tokens)::bigint AS cached, sum(s.cache_write_tokens)::bigint AS written,
           sum(s.cost_micros)::bigint AS cost
      FROM (${spend.source}) s
     GROUP BY 1`,
  );
  return sortRows(
    raw.map((r) => ({
      key: r.key,
      requests: count(r.requests),
      promptTokens: count(r.prompt),
      unpricedPromptTokens: count(r.unpriced),
      cachedPromptTokens: count(r.cached),
      cacheWriteTokens: count(r.written),
      completionTokens: count(r.completion),
      costMicros: r.cost,
    })),
  );
}

/** A cost report's columns, in order: the group key, then the counts and the cost (CSV and the CLI's table). */
export const REPORT_CSV_HEADER = [
  'key',
  'requests',
  'promptTokens',
  'unpricedPromptTokens',
  'cachedPromptTokens',
  'cacheWriteTokens',
  'completionTokens',
  'costUsd',
] as const;

export function reportCsv(rows: readonly CostReportRowView[]): string {
  return toCsv(
    REPORT_CSV_HEADER,
    rows.map((r) => [
      r.key,
      String(r.requests),
      String(r.promptTokens),
      String(r.unpricedPromptTokens),
      String(r.cachedPromptTokens),
      String(r.cacheWriteTokens),
      String(r.completionTokens),
      formatUsd(r.costMicros),
    ]),
  );
}
