import type { Micros } from '../accounting/money';

export type BudgetEventKind = 'THRESHOLD' | 'FORECAST';
export type WebhookStatus = 'PENDING' | 'DELIVERED' | 'FAILED' | 'NONE';

/** A budget event as subscribers, webhooks and the alert log see it. */
export interface BudgetEventView {
  /** The stable event id (the outbox row's event_id): the same on every webhook retry. */
  readonly id: string;
  readonly tenantId: string;
  readonly kind: BudgetEventKind;
  /** YYYY-MM, the budget month. */
  readonly month: string;
  readonly thresholdPercent: number | null;
  readonly spentMicros: Micros;
  readonly budgetMicros: Micros | null;
  /** FORECAST: the UTC day (YYYY-MM-DD) the budget runs out at this month's pace. */
  readonly exhaustsOn: string | null;
  readonly createdAt: Date;
}

export interface BudgetAlertView {
  readonly event: BudgetEventView;
  readonly webhookStatus: WebhookStatus;
  readonly attempts: number;
  readonly deliveredAt: Date | null;
}

export interface AlertDeliveryView {
  readonly id: string;
  readonly eventId: string;
  readonly tenantId: string;
  readonly attempt: number;
  readonly url: string;
  readonly statusCode: number | null;
  readonly ok: boolean;
  readonly error: string | null;
  readonly durationMs: number;
  readonly createdAt: Date;
}

/** An outbox row as Postgres returns it (raw SQL or Prisma). */
export interface OutboxRow {
  readonly eventId: string;
  readonly tenantId: string;
  readonly kind: BudgetEventKind;
  readonly month: Date;
  readonly threshold: number | null;
  readonly exhaustsOn: Date | null;
  readonly spentMicros: bigint;
  readonly budgetMicros: bigint | null;
  readonly createdAt: Date;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export function eventOf(r: OutboxRow): BudgetEventView {
  return {
    id: r.eventId,
    tenantId: r.tenantId,
    kind: r.kind,
    month: day(r.month).slice(0, 7),
    thresholdPercent: r.threshold,
    spentMicros: r.spentMicros,
    budgetMicros: r.budgetMicros,
    exhaustsOn: r.exhaustsOn ? day(r.exhaustsOn) : null,
    createdAt: r.createdAt,
  };
}

/** Over Redis pub/sub: bigint and Date as strings. */
export function eventToJson(e: BudgetEventView): string {
  return JSON.stringify({
    ...e,
    spentMicros: e.spentMicros.toString(),
    budgetMicros: e.budgetMicros?.toString() ?? null,
    createdAt: e.createdAt.toISOString(),
  });
}

export function eventFromJson(s: string): BudgetEventView {
  const j = JSON.parse(s) as Omit<BudgetEventView, 'spentMicros' | 'budgetMicros' | 'createdAt'> & {
    spentMicros: string;
    budgetMicros: string | null;
    createdAt: string;
  };
  return { ...j, spentMicros: BigInt(j.spentMicros), budgetMicros: j.budgetMicros === null ? null : BigInt(j.budgetMicros), createdAt: new Date(j.createdAt) };
}
