import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import type { BudgetEventHub } from './budget-events';
import type { WebhookSender } from './webhook-sender';
import { eventOf, type OutboxRow } from './types';

export interface DeliveryOptions {
  readonly maxAttempts: number;
  /** The first retry waits this long; each next one twice as long, at most an hour. */
  readonly retryBaseMs: number;
}

export interface DeliveryJob {
  /** One pass: publishes unpublished events to subscribers, then makes the webhook attempts that are due. */
  deliverOnce(): Promise<{ published: number; attempted: number }>;
}

/** A claimed row stays with its instance this long: longer than an attempt can take (connect + response timeouts). */
const LEASE_SECONDS = 60;
const BATCH = 20;
const MAX_BACKOFF_MS = 3600_000;

const OUTBOX_COLUMNS = `o.id, o.event_id::text AS "eventId", o.tenant_id::text AS "tenantId", o.kind::text AS kind, o.month,
  o.threshold, o.exhausts_on AS "exhaustsOn", o.spent_micros AS "spentMicros", o.budget_micros AS "budgetMicros", o.created_at AS "createdAt"`;

type Claimed = OutboxRow & { id: bigint; attempts: number; url: string | null; secret: string | null };

export const backoffMs = (attempt: number, baseMs: number): number => Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));

/**
 * Delivers the outbox. Rows are claimed with FOR UPDATE SKIP LOCKED, so instances running this at once take
 * different rows: a subscriber publish happens under the row's lock (one instance publishes it, and only a commit
 * after the publish marks it done); a webhook attempt under a lease (lease_until) taken in the claiming statement,
 * so no transaction stays open across the POST and no two instances POST one event at once.
 */
export function makeDeliveryJob(deps: { db: Db; hub: BudgetEventHub; sender: WebhookSender; logger: Logger; options: DeliveryOptions }): DeliveryJob {
  const { db } = deps;

  async function publishPending(): Promise<number> {
    return db.$transaction(async (tx) => {
      const rows = await tx.$queryRawUnsafe<(OutboxRow & { id: bigint })[]>(
        `SELECT ${OUTBOX_COLUMNS} FROM budget_alert_outbox o WHERE o.published_at IS NULL ORDER BY o.id LIMIT 100 FOR UPDATE SKIP LOCKED`,
      );
      if (rows.length === 0) return 0;
      for (const r of rows) await deps.hub.publish(eventOf(r));
      await tx.$executeRaw`UPDATE budget_alert_outbox SET published_at = now() WHERE id = ANY(${rows.map((r) => r.id.toString())}::bigint[])`;
      return rows.length;
    });
  }

  async function claimDue(): Promise<Claimed[]> {
    return db.$queryRawUnsafe<Claimed[]>(
      `UPDATE budget_alert_outbox o SET lease_until = now() + make_interval(secs => ${LEASE_SECONDS}), attempts = o.attempts + 1
         FROM tenants t
        WHERE t.id = o.tenant_id AND o.id IN (
              SELECT id FROM budget_alert_outbox
               WHERE webhook_status = 'PENDING' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
               ORDER BY next_attempt_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
        RETURNING ${OUTBOX_COLUMNS}, o.attempts, t.alert_webhook_url AS url, t.alert_webhook_secret AS secret`,
    );
  }

  async function attempt(r: Claimed): Promise<void> {
    if (r.url === null || r.secret === null) {
      await db.$executeRaw`UPDATE budget_alert_outbox SET webhook_status = 'NONE', attempts = 0, lease_until = NULL WHERE id = ${r.id}`;
      return;
    }
    const res = await deps.sender.send(r.url, r.secret, eventOf(r));
    const status = res.ok ? 'DELIVERED' : res.permanent || r.attempts >= deps.options.maxAttempts ? 'FAILED' : 'PENDING';
    const retryMs = backoffMs(r.attempts, deps.options.retryBaseMs);
    await db.$transaction([
      db.alertDelivery.create({
        data: {
          alertId: r.id,
          tenantId: r.tenantId,
          attempt: r.attempts,
          url: r.url,
          statusCode: res.statusCode,
          ok: res.ok,
          error: res.error,
          durationMs: res.durationMs,
        },
      }),
      db.$executeRaw`UPDATE budget_alert_outbox
                        SET webhook_status = ${status}::"WebhookStatus", lease_until = NULL,
                            delivered_at = CASE WHEN ${res.ok} THEN now() ELSE NULL END,
                            next_attempt_at = now() + make_interval(secs => ${retryMs / 1000})
                      WHERE id = ${r.id}`,
    ]);
    if (!res.ok) deps.logger.info({ eventId: r.eventId, attempt: r.attempts, status, error: res.error }, 'budget alert webhook attempt failed');
  }

  return {
    async deliverOnce() {
      // Redis down must not hold webhooks back: the unpublished rows stay so and the next pass publishes them.
      const published = await publishPending().catch((e) => {
        deps.logger.warn({ err: e }, 'budget events not published to subscribers; retried next pass');
        return 0;
      });
      const due = await claimDue();
      await Promise.all(
        due.map((r) => attempt(r).catch((e) => deps.logger.warn({ err: e, eventId: r.eventId }, 'budget alert delivery failed; retried after its lease'))),
      );
      return { published, attempted: due.length };
    },
  };
}
