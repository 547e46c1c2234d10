import type { Db } from '../infra/prisma';
import { bigintOf, checkFirst, dateOf, decode, encode, page, type Page } from '../reports/pages';
import { eventOf, type AlertDeliveryView, type BudgetAlertView } from './types';

/** The alert log and the webhook delivery log, newest first, paged like the other connections (keyset on time, id). */
export function makeAlertPages(db: Db) {
  const after = (cursor: string | null, field: 'createdAt') => {
    if (cursor === null) return {};
    const [at, id] = decode(cursor);
    return { OR: [{ [field]: { lt: dateOf(at) } }, { [field]: dateOf(at), id: { lt: bigintOf(id) } }] };
  };
  return {
    async alerts(tenantId: string | null, first: number, cursor: string | null): Promise<Page<BudgetAlertView>> {
      checkFirst(first);
      const rows = await db.budgetAlert.findMany({
        where: { ...(tenantId === null ? {} : { tenantId }), ...after(cursor, 'createdAt') },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: first + 1,
      });
      return page(
        rows,
        first,
        (r) => encode(r.createdAt.toISOString(), r.id.toString()),
        (r) => ({ event: eventOf(r), webhookStatus: r.webhookStatus, attempts: r.attempts, deliveredAt: r.deliveredAt }),
      );
    },

    async deliveries(tenantId: string | null, first: number, cursor: string | null): Promise<Page<AlertDeliveryView>> {
      checkFirst(first);
      const rows = await db.alertDelivery.findMany({
        where: { ...(tenantId === null ? {} : { tenantId }), ...after(cursor, 'createdAt') },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: first + 1,
        include: { alert: { select: { eventId: true } } },
      });
      return page(
        rows,
        first,
        (r) => encode(r.createdAt.toISOString(), r.id.toString()),
        (r) => ({
          id: r.id.toString(),
          eventId: r.alert.eventId,
          tenantId: r.tenantId,
          attempt: r.attempt,
          url: r.url,
          statusCode: r.statusCode,
          ok: r.ok,
          error: r.error,
          durationMs: r.durationMs,
          createdAt: r.createdAt,
        }),
      );
    },
  };
}

export type AlertPages = ReturnType<typeof makeAlertPages>;
