import { Prisma } from '../../generated/prisma/client';
import type { Db } from '../infra/prisma';
import { AppError, badInput } from '../errors';
import { monthOf, monthRange } from '../accounting/period';
import { isUuid } from '../tenants/tenant-store';
import { DEFAULT_ROLLUP_LAG_MS } from './day-plan';
import { everyTenantsSpend, planFor, withoutJit } from './spend-source';
import { isReportGroup, queryReportRows, reportCsv } from './cost-report';
import { projectCost, type ModelShare } from './projection';
import { checkPage, pageAudit, pageRequests, requestRecord } from './records';
import { REPORT_GROUPS } from './types';
import type { ApiKeyInfoView, AuditEntryView, CostProjectionView, CostReportView, ReportGroup, RequestRecordView, TenantSpendView } from './types';

export interface ReportsService {
  /**
   * The tenant's settled spend of a UTC month (YYYY-MM; a request belongs to the month its startedAt falls in),
   * grouped. Rows by cost descending, then key ascending; their costs sum to totalMicros, which is the exact sum of the
   * month's SETTLED ledger rows (stored costs, never re-priced; HELD rows are not in it). Keys: MODEL the answering
   * model or '(none)' when none answered; PROFILE the profile; DAY 'YYYY-MM-DD' (UTC); API_KEY the key id, or
   * 'unknown' when the row carries none. csv: see csv.ts (CRLF, RFC 4180, formula cells neutralised).
   * BAD_USER_INPUT naming `month` or `groupBy`; NOT_FOUND for an unknown tenant.
   */
  costReport(tenantId: string, month: string, groupBy: ReportGroup): Promise<CostReportView>;
  /** See projection.ts for the arithmetic and the errors. Prices are the models table's current ones. */
  costProjection(monthlyOutputTokens: number, mix: readonly ModelShare[]): Promise<CostProjectionView>;
  /** The tenant's keys, newest first (revoked ones included). NOT_FOUND for an unknown tenant. */
  apiKeys(tenantId: string): Promise<ApiKeyInfoView[]>;
  /** One key, whichever tenant's (the admin's view after changing it); NOT_FOUND for an unknown or malformed id. */
  apiKey(id: string): Promise<ApiKeyInfoView>;
  /** tenantId null = admin (any tenant). Another tenant's request, an unknown or a non-uuid id -> null. */
  request(requestId: string, tenantId: string | null): Promise<RequestRecordView | null>;
  /**
   * The tenant's requests, newest first by startedAt (ties by ledger id), `before` exclusive. first: 1..500 else
   * BAD_USER_INPUT naming `first`. A full page is extended by rows tied with its last startedAt (see records.ts),
   * so paging with before = last row's startedAt never skips one. NOT_FOUND for an unknown tenant.
   */
  requests(tenantId: string, first: number, before: Date | null): Promise<RequestRecordView[]>;
  /** The audit trail, newest first, paged like `requests`; tenantId null: every tenant's (and tenant-less) entries. */
  auditLog(tenantId: string | null, first: number, before: Date | null): Promise<AuditEntryView[]>;
  /** For the CLI overview: every tenant's spend this month with budget and share used, by name. */
  tenantsOverview(month: string): Promise<TenantSpendView[]>;
}

const notFoundTenant = (id: string) => new AppError('NOT_FOUND', `no tenant with id "${String(id).slice(0, 64)}"`);

/**
 * Reads for reports, keys, requests and the audit trail. Monthly sums read the daily rollups of days the rollup job
 * has computed and the raw ledger of every other day (see spend-source.ts); the figures are the same either way.
 * `now` and `rollupSafetyLagMs` decide which computed days count as closed (defaults: the clock, 10 minutes).
 */
export function makeReportsService(deps: { db: Db; now?: () => Date; rollupSafetyLagMs?: number }): ReportsService {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  const lagMs = deps.rollupSafetyLagMs ?? DEFAULT_ROLLUP_LAG_MS;

  const tenantOrThrow = async (tenantId: string) => {
    const t = typeof tenantId === 'string' && isUuid(tenantId) ? await db.tenant.findUnique({ where: { id: tenantId }, select: { id: true } }) : null;
    if (!t) throw notFoundTenant(tenantId);
    return t;
  };

  return {
    async costReport(tenantId, month, groupBy) {
      const range = monthRange(month, 'month');
      if (!isReportGroup(groupBy)) throw badInput('groupBy', `expected one of ${REPORT_GROUPS.join(', ')}`);
      await tenantOrThrow(tenantId);
      const plan = await planFor(db, range, now().getTime(), lagMs);
      const rows = await queryReportRows(db, tenantId, plan, groupBy);
      const totalMicros = rows.reduce((s, r) => s + r.costMicros, 0n);
      return { tenantId, month, groupBy, totalMicros, rows, csv: reportCsv(rows) };
    },

    async costProjection(monthlyOutputTokens, mix) {
      const models = await db.model.findMany({ select: { id: true, outputMicrosPerMillion: true } });
      return projectCost(monthlyOutputTokens, mix, new Map(models.map((m) => [m.id, m.outputMicrosPerMillion])));
    },

    async apiKeys(tenantId) {
      await tenantOrThrow(tenantId);
      return apiKeyViews(db, tenantId, now(), await db.apiKey.findMany({ where: { tenantId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] }));
    },

    async apiKey(id) {
      const k = typeof id === 'string' && isUuid(id) ? await db.apiKey.findUnique({ where: { id } }) : null;
      if (!k) throw new AppError('NOT_FOUND', `no API key with id "${String(id).slice(0, 64)}"`);
      return (await apiKeyViews(db, k.tenantId, now(), [k]))[0]!;
    },

    async request(requestId, tenantId) {
      if (typeof requestId !== 'string' || !isUuid(requestId)) return null;
      const r = await db.ledgerEntry.findUnique({ where: { requestId } });
      if (!r || (tenantId !== null && r.tenantId !== tenantId)) return null;
      return requestRecord(r);
    },

    async requests(tenantId, first, before) {
      checkPage(first, before);
      await tenantOrThrow(tenantId);
      return pageRequests(db, tenantId, first, before);
    },

    async auditLog(tenantId, first, before) {
      checkPage(first, before);
      // No such tenant can have entries; a non-uuid cannot even be compared with the column.
      if (tenantId !== null && !isUuid(tenantId)) return [];
      return pageAudit(db, tenantId, first, before);
    },

    async tenantsOverview(month) {
      const range = monthRange(month, 'month');
      const plan = await planFor(db, range, now().getTime(), lagMs);
      // Per tenant, so each tenant's rows are read through the (tenant_id, started_at) index.
      const rows = await withoutJit<{ id: string; name: string; budget: bigint | null; spent: bigint }[]>(
        db,
        Prisma.sql`
        SELECT t.id::text AS id, t.name, t.monthly_budget_micros AS budget, s.spent
          FROM tenants t JOIN (${everyTenantsSpend(plan)}) s ON s.tenant_id = t.id
         ORDER BY t.name`,
      );
      return rows.map((r) => ({
        tenantId: r.id,
        name: r.name,
        spentMicros: r.spent,
        budgetMicros: r.budget,
        shareUsed: r.budget === null || r.budget === 0n ? null : Number(r.spent) / Number(r.budget),
      }));
    },
  };
}

type ApiKeyRow = Awaited<ReturnType<Db['apiKey']['findMany']>>[number];

/** Keys as the API shows them, each with what its requests cost this month (settled rows of the ledger, one query). */
async function apiKeyViews(db: Db, tenantId: string, at: Date, keys: ApiKeyRow[]): Promise<ApiKeyInfoView[]> {
  const { start, end } = monthRange(monthOf(at));
  const spent = await db.ledgerEntry.groupBy({
    by: ['apiKeyId'],
    where: { tenantId, state: 'SETTLED', startedAt: { gte: start, lt: end }, apiKeyId: { in: keys.map((k) => k.id) } },
    _sum: { costMicros: true },
  });
  const byKey = new Map(spent.map((r) => [r.apiKeyId, r._sum.costMicros ?? 0n]));
  return keys.map((k) => ({
    id: k.id,
    prefix: k.prefix,
    name: k.name,
    monthlyBudgetMicros: k.monthlyBudgetMicros,
    requestsPerMinute: k.requestsPerMinute,
    tokensPerMinute: k.tokensPerMinute,
    spentThisMonthMicros: byKey.get(k.id) ?? 0n,
    createdAt: k.createdAt,
    lastUsedAt: k.lastUsedAt,
    revokedAt: k.revokedAt,
    rotatedAt: k.rotatedAt,
    previousKeyExpiresAt: k.previousExpiresAt,
  }));
}
