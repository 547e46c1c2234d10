import type { Db } from '../infra/prisma';
import { badInput } from '../errors';
import { auditEntry, MAX_PAGE, requestRecord } from './records';
import type { AuditEntryView, RequestRecordView } from './types';

/** One page of a Relay-style connection: at most `first` nodes, each with its cursor. */
export interface Page<T> {
  readonly edges: ReadonlyArray<{ readonly cursor: string; readonly node: T }>;
  readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null };
}

/**
 * Cursors are opaque to clients: base64url of [sort key, id]. Paging is by keyset on (sort key, id), so rows that
 * share a timestamp (two audit records of one transaction) keep one stable order and none is skipped or repeated,
 * and a page never holds more than `first` rows (the contract's list fields extend a page with ties instead).
 */
export const encode = (key: string, id: string) => Buffer.from(JSON.stringify([key, id])).toString('base64url');

export function decode(cursor: string): [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw badInput('after', 'not a cursor this API gave out (pass a pageInfo.endCursor or an edge cursor)');
}

export function checkFirst(first: number): void {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw badInput('first', `expected a whole number from 1 to ${MAX_PAGE}, got ${String(first)}`);
}

export const dateOf = (s: string): Date => {
  const d = new Date(s);
  if (!Number.isFinite(d.getTime())) throw badInput('after', 'not a cursor this API gave out');
  return d;
};
export const bigintOf = (s: string): bigint => {
  if (!/^\d{1,19}$/.test(s)) throw badInput('after', 'not a cursor this API gave out');
  return BigInt(s);
};

export function page<R, T>(rows: R[], first: number, cursorOf: (r: R) => string, nodeOf: (r: R) => T): Page<T> {
  const kept = rows.slice(0, first);
  const edges = kept.map((r) => ({ cursor: cursorOf(r), node: nodeOf(r) }));
  return { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null } };
}

/** Connections over the ledger, the audit trail and the tenants, newest (or first by name) first. */
export function makePager(db: Db) {
  return {
    async requests(tenantId: string, first: number, after: string | null): Promise<Page<RequestRecordView>> {
      checkFirst(first);
      const c = after === null ? null : decode(after);
      const rows = await db.ledgerEntry.findMany({
        where: { tenantId, ...(c ? { OR: [{ startedAt: { lt: dateOf(c[0]) } }, { startedAt: dateOf(c[0]), id: { lt: bigintOf(c[1]) } }] } : {}) },
        orderBy: [{ startedAt: 'desc' }, { id: 'desc' }],
        take: first + 1,
      });
      return page(rows, first, (r) => encode(r.startedAt.toISOString(), r.id.toString()), requestRecord);
    },

    async auditLog(tenantId: string | null, first: number, after: string | null): Promise<Page<AuditEntryView>> {
      checkFirst(first);
      const c = after === null ? null : decode(after);
      const rows = await db.auditEntry.findMany({
        where: {
          ...(tenantId === null ? {} : { tenantId }),
          ...(c ? { OR: [{ createdAt: { lt: dateOf(c[0]) } }, { createdAt: dateOf(c[0]), id: { lt: bigintOf(c[1]) } }] } : {}),
        },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: first + 1,
      });
      return page(rows, first, (a) => encode(a.createdAt.toISOString(), a.id.toString()), auditEntry);
    },

    /** Tenant ids by name; the caller turns each into its view. */
    async tenants(first: number, after: string | null): Promise<Page<string>> {
      checkFirst(first);
      const c = after === null ? null : decode(after);
      const rows = await db.tenant.findMany({
        select: { id: true, name: true },
        where: c ? { OR: [{ name: { gt: c[0] } }, { name: c[0], id: { gt: c[1] } }] } : {},
        orderBy: [{ name: 'asc' }, { id: 'asc' }],
        take: first + 1,
      });
      return page(
        rows,
        first,
        (t) => encode(t.name, t.id),
        (t) => t.id,
      );
    },
  };
}

export type Pager = ReturnType<typeof makePager>;
