import { createPrisma, type Db } from '../infra/prisma';
import type { Config } from '../config';
import { runCli, type CliIo } from '../infra/cli';
import { formatUsd } from '../accounting/money';
import { monthRange } from '../accounting/period';
import { isAppError } from '../errors';
import { isUuid } from '../tenants/tenant-store';
import { toCsv } from './csv';
import { makeReportsService, type ReportsService } from './reports-service';
import type { CostReportView, ReportGroup, TenantSpendView } from './types';
import { REPORT_CSV_HEADER } from './cost-report';

/**
 * The admin's report CLI, over the same ReportsService as the GraphQL API:
 *
 *   npm run report -- --month 2026-11 [--tenant <name or id>] [--group model|profile|day|key] [--format table|csv|json]
 *
 * With --tenant: that tenant's cost report (default grouping model). Without: one line per tenant with its spend,
 * budget and share of the budget used. --format csv prints exactly the report's `csv` field (CRLF line ends).
 * Exit codes: 0 done; 1 the report could not be made (unknown tenant, database down); 2 bad flags (usage printed).
 */
export const USAGE = `usage: npm run report -- --month YYYY-MM [--tenant <name or id>] [--group model|profile|day|key] [--format table|csv|json]
  --month   calendar month in UTC, e.g. 2026-11 (required)
  --tenant  a tenant's name or id; left out: one line per tenant (spend, budget, share used)
  --group   grouping of a tenant's report (default: model)
  --format  table (default), csv or json`;

export interface CliDeps {
  readonly reports: ReportsService;
  /** For resolving --tenant by name or id. */
  readonly db: Pick<Db, 'tenant'>;
}

const GROUPS: Readonly<Record<string, ReportGroup>> = { model: 'MODEL', profile: 'PROFILE', day: 'DAY', key: 'API_KEY' };
const FORMATS = ['table', 'csv', 'json'] as const;
type Format = (typeof FORMATS)[number];

interface Args {
  readonly month: string;
  readonly tenant: string | null;
  readonly group: ReportGroup | null;
  readonly format: Format;
}

class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): Args | 'help' {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return 'help';
    const m = /^--(month|tenant|group|format)(?:=(.*))?$/s.exec(a);
    if (!m) throw new UsageError(`unknown argument "${a}"`);
    const name = m[1]!;
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      i++;
    }
    if (flags.has(name)) throw new UsageError(`--${name} given twice`);
    flags.set(name, value);
  }
  const month = flags.get('month');
  if (month === undefined) throw new UsageError('--month is required');
  try {
    monthRange(month, 'month');
  } catch {
    throw new UsageError(`--month "${month}" is not a month: use YYYY-MM, e.g. 2026-11`);
  }
  const g = flags.get('group');
  const group = g === undefined ? null : GROUPS[g.toLowerCase()];
  if (group === undefined) throw new UsageError(`--group must be one of ${Object.keys(GROUPS).join(', ')}`);
  const f = (flags.get('format') ?? 'table').toLowerCase();
  if (!(FORMATS as readonly string[]).includes(f)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}`);
  const tenant = flags.get('tenant') ?? null;
  if (tenant !== null && tenant.trim() === '') throw new UsageError('--tenant needs a name or id');
  if (tenant === null && group !== null) throw new UsageError('--group applies to one tenant: add --tenant');
  return { month, tenant, group, format: f as Format };
}

/** Runs the CLI; returns the exit code. Never calls process.exit, so a test can run it against a database. */
export async function runReportCli(argv: readonly string[], deps: CliDeps, io: CliIo): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`error: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (args === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  try {
    if (args.tenant === null) {
      io.out(renderOverview(args.month, await deps.reports.tenantsOverview(args.month), args.format));
      return 0;
    }
    const tenant = await resolveTenant(deps.db, args.tenant);
    if (!tenant) {
      io.err(`error: no tenant named or with id "${args.tenant}"\n`);
      return 1;
    }
    const report = await deps.reports.costReport(tenant.id, args.month, args.group ?? 'MODEL');
    io.out(renderReport(tenant.name, report, args.format));
    return 0;
  } catch (e) {
    io.err(`error: ${isAppError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** By id when the argument is one of an existing tenant, else by exact name. */
export async function resolveTenant(db: Pick<Db, 'tenant'>, nameOrId: string): Promise<{ id: string; name: string } | null> {
  const select = { id: true, name: true } as const;
  if (isUuid(nameOrId)) {
    const t = await db.tenant.findUnique({ where: { id: nameOrId.toLowerCase() }, select });
    if (t) return t;
  }
  return db.tenant.findUnique({ where: { name: nameOrId }, select });
}

/** Terminal output shows control characters escaped: a key cannot move the cursor or recolour the screen. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const printable = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

const GROUP_WORD: Readonly<Record<ReportGroup, string>> = { MODEL: 'model', PROFILE: 'profile', DAY: 'day', API_KEY: 'API key' };

export function renderReport(tenantName: string, r: CostReportView, format: Format): string {
  switch (format) {
    case 'csv':
      return r.csv;
    case 'json':
      return (
        JSON.stringify(
          {
            tenantId: r.tenantId,
            tenant: tenantName,
            month: r.month,
            groupBy: r.groupBy,
            totalUsd: formatUsd(r.totalMicros),
            rows: r.rows.map(({ costMicros, ...x }) => ({ ...x, costUsd: formatUsd(costMicros) })),
          },
          null,
          2,
        ) + '\n'
      );
    case 'table': {
      const sum = (f: (x: (typeof r.rows)[number]) => number) => r.rows.reduce((s, x) => s + f(x), 0);
      const counts = (x: (typeof r.rows)[number]) =>
        [x.requests, x.promptTokens, x.unpricedPromptTokens, x.cachedPromptTokens, x.cacheWriteTokens, x.completionTokens].map(String);
      const rows = r.rows.map((x) => [printable(x.key), ...counts(x), formatUsd(x.costMicros)]);
      rows.push([
        'TOTAL',
        ...[
          sum((x) => x.requests),
          sum((x) => x.promptTokens),
          sum((x) => x.unpricedPromptTokens),
          sum((x) => x.cachedPromptTokens),
          sum((x) => x.cacheWriteTokens),
          sum((x) => x.completionTokens),
        ].map(String),
        formatUsd(r.totalMicros),
      ]);
      const head = `Cost report: tenant ${printable(tenantName)} (${r.tenantId}), ${r.month} (UTC), by ${GROUP_WORD[r.groupBy]}\n`;
      const columns = [GROUP_WORD[r.groupBy], ...REPORT_CSV_HEADER.slice(1)];
      return head + table(columns, rows, new Set([1, 2, 3, 4, 5, 6, 7]));
    }
  }
}

const percent = (share: number | null): string => (share === null ? '-' : `${(share * 100).toFixed(1)}%`);

export function renderOverview(month: string, tenants: readonly TenantSpendView[], format: Format): string {
  switch (format) {
    case 'csv':
      return toCsv(
        ['tenant', 'tenantId', 'spentUsd', 'budgetUsd', 'shareUsed'],
        tenants.map((t) => [
          t.name,
          t.tenantId,
          formatUsd(t.spentMicros),
          t.budgetMicros === null ? '' : formatUsd(t.budgetMicros),
          t.shareUsed === null ? '' : String(t.shareUsed),
        ]),
      );
    case 'json':
      return (
        JSON.stringify(
          tenants.map((t) => ({
            tenantId: t.tenantId,
            name: t.name,
            spentUsd: formatUsd(t.spentMicros),
            budgetUsd: t.budgetMicros === null ? null : formatUsd(t.budgetMicros),
            shareUsed: t.shareUsed,
          })),
          null,
          2,
        ) + '\n'
      );
    case 'table':
      return (
        `Spend by tenant, ${month} (UTC)\n` +
        table(
          ['tenant', 'spentUsd', 'budgetUsd', 'used'],
          tenants.map((t) => [printable(t.name), formatUsd(t.spentMicros), t.budgetMicros === null ? '-' : formatUsd(t.budgetMicros), percent(t.shareUsed)]),
          new Set([1, 2, 3]),
        )
      );
  }
}

async function main(config: Config, argv: readonly string[], io: CliIo): Promise<number> {
  const db = createPrisma(config.DATABASE_URL, { max: 2 });
  try {
    return await runReportCli(argv, { reports: makeReportsService({ db }), db }, io);
  } finally {
    await db.$disconnect();
  }
}

if (require.main === module) runCli(main);
