import type { Db } from '../infra/prisma';
import type { LedgerEntry, AuditEntry } from '../../generated/prisma/client';
import { badInput } from '../errors';
import type { AttemptView } from '../chat/types';
import type { AuditEntryView, RequestRecordView } from './types';

/** Page sizes of `requests` and `auditLog`: 1..500, BAD_USER_INPUT naming `first` otherwise. */
export const MAX_PAGE = 500;

export function checkPage(first: number, before: Date | null): void {
  if (typeof first !== 'number' || !Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw badInput('first', `expected a whole number from 1 to ${MAX_PAGE}, got ${String(first)}`);
  }
  if (before !== null && !(before instanceof Date && Number.isFinite(before.getTime()))) throw badInput('before', 'expected a date-time');
}

/**
 * Newest-first paging by a timestamp cursor (`before`, exclusive) must not lose rows that share the timestamp of a
 * page's last row: the next page asks for rows strictly before it. So a full page is extended with the remaining
 * rows tied with its last row (ordered by id, descending, like the page). A page can then hold more than `first`
 * rows, only when timestamps tie (e.g. two audit records written by one transaction share its now()).
 */
async function withTies<T extends { id: bigint }>(
  page: T[],
  first: number,
  at: (row: T) => Date,
  ties: (at: Date, belowId: bigint) => Promise<T[]>,
): Promise<T[]> {
  const last = page[page.length - 1];
  if (page.length < first || last === undefined) return page;
  return page.concat(await ties(at(last), last.id));
}

function attemptsOf(json: unknown): AttemptView[] {
  if (!Array.isArray(json)) return [];
  return json.flatMap((a): AttemptView[] => {
    if (a === null || typeof a !== 'object') return [];
    const o = a as Record<string, unknown>;
    return [
      {
        model: String(o.model ?? ''),
        ok: o.ok === true,
        error: typeof o.error === 'string' ? o.error : null,
        latencyMs: typeof o.latencyMs === 'number' && Number.isFinite(o.latencyMs) ? Math.round(o.latencyMs) : 0,
      },
    ];
  });
}

export function requestRecord(r: LedgerEntry): RequestRecordView {
  const settled = r.state === 'SETTLED';
  return {
    requestId: r.requestId,
    profile: r.profile,
    region: r.region,
    model: r.model,
    attempts: attemptsOf(r.attempts),
    outcome: settled ? r.outcome : null,
    usage: settled
      ? {
          promptTokens: r.promptTokens,
          completionTokens: r.completionTokens,
          cachedPromptTokens: r.cachedPromptTokens,
          cacheWriteTokens: r.cacheWriteTokens,
          costMicros: r.costMicros,
          source: r.usageSource ?? 'ESTIMATED',
        }
      : null,
    startedAt: r.startedAt,
    endedAt: settled ? r.endedAt : null,
  };
}

const jsonText = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

export function auditEntry(a: AuditEntry): AuditEntryView {
  return {
    id: a.id.toString(),
    actor: a.actor,
    actorKeyId: a.actorKeyId,
    action: a.action,
    targetType: a.targetType,
    targetId: a.targetId,
    tenantId: a.tenantId,
    oldValue: jsonText(a.oldValue),
    newValue: jsonText(a.newValue),
    createdAt: a.createdAt,
  };
}

export async function pageRequests(db: Db, tenantId: string, first: number, before: Date | null): Promise<RequestRecordView[]> {
  const page = await db.ledgerEntry.findMany({
    where: { tenantId, ...(before ? { startedAt: { lt: before } } : {}) },
    orderBy: [{ startedAt: 'desc' }, { id: 'desc' }],
    take: first,
  });
  const all = await withTies(
    page,
    first,
    (r) => r.startedAt,
    (at, belowId) => db.ledgerEntry.findMany({ where: { tenantId, startedAt: at, id: { lt: belowId } }, orderBy: { id: 'desc' } }),
  );
  return all.map(requestRecord);
}

export async function pageAudit(db: Db, tenantId: string | null, first: number, before: Date | null): Promise<AuditEntryView[]> {
  const scope = tenantId === null ? {} : { tenantId };
  const page = await db.auditEntry.findMany({
    where: { ...scope, ...(before ? { createdAt: { lt: before } } : {}) },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: first,
  });
  const all = await withTies(
    page,
    first,
    (a) => a.createdAt,
    (at, belowId) => db.auditEntry.findMany({ where: { ...scope, createdAt: at, id: { lt: belowId } }, orderBy: { id: 'desc' } }),
  );
  return all.map(auditEntry);
}
