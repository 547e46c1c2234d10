-- CreateEnum
CREATE TYPE "BudgetEventKind" AS ENUM ('THRESHOLD', 'FORECAST');

-- CreateEnum
CREATE TYPE "WebhookStatus" AS ENUM ('PENDING', 'DELIVERED', 'FAILED', 'NONE');

-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "alert_thresholds" INTEGER[] DEFAULT ARRAY[50, 80, 100]::INTEGER[],
ADD COLUMN     "alert_webhook_secret" TEXT,
ADD COLUMN     "alert_webhook_url" TEXT;

-- CreateTable
CREATE TABLE "tenant_month_spend" (
    "tenant_id" UUID NOT NULL,
    "month" DATE NOT NULL,
    "spent_micros" BIGINT NOT NULL DEFAULT 0,
    "fired_thresholds" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenant_month_spend_pkey" PRIMARY KEY ("tenant_id","month")
);

-- CreateTable
CREATE TABLE "budget_alert_outbox" (
    "id" BIGSERIAL NOT NULL,
    "event_id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "kind" "BudgetEventKind" NOT NULL,
    "month" DATE NOT NULL,
    "threshold" INTEGER,
    "forecast_day" DATE,
    "exhausts_on" DATE,
    "spent_micros" BIGINT NOT NULL,
    "budget_micros" BIGINT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMPTZ(3),
    "webhook_status" "WebhookStatus" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lease_until" TIMESTAMPTZ(3),
    "delivered_at" TIMESTAMPTZ(3),

    CONSTRAINT "budget_alert_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "budget_alert_deliveries" (
    "id" BIGSERIAL NOT NULL,
    "alert_id" BIGINT NOT NULL,
    "tenant_id" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "url" TEXT NOT NULL,
    "status_code" INTEGER,
    "ok" BOOLEAN NOT NULL,
    "error" TEXT,
    "duration_ms" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "budget_alert_deliveries_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "budget_alert_outbox_event_id_key" ON "budget_alert_outbox"("event_id");

-- CreateIndex
CREATE INDEX "budget_alert_outbox_tenant_id_created_at_idx" ON "budget_alert_outbox"("tenant_id", "created_at");

-- CreateIndex
CREATE INDEX "budget_alert_outbox_webhook_status_next_attempt_at_idx" ON "budget_alert_outbox"("webhook_status", "next_attempt_at");

-- CreateIndex
CREATE INDEX "budget_alert_outbox_published_at_idx" ON "budget_alert_outbox"("published_at");

-- CreateIndex
CREATE UNIQUE INDEX "budget_alert_outbox_tenant_id_month_threshold_key" ON "budget_alert_outbox"("tenant_id", "month", "threshold");

-- CreateIndex
CREATE UNIQUE INDEX "budget_alert_outbox_tenant_id_forecast_day_key" ON "budget_alert_outbox"("tenant_id", "forecast_day");

-- CreateIndex
CREATE INDEX "budget_alert_deliveries_tenant_id_created_at_idx" ON "budget_alert_deliveries"("tenant_id", "created_at");

-- CreateIndex
CREATE INDEX "budget_alert_deliveries_alert_id_idx" ON "budget_alert_deliveries"("alert_id");

-- AddForeignKey
ALTER TABLE "budget_alert_outbox" ADD CONSTRAINT "budget_alert_outbox_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "budget_alert_deliveries" ADD CONSTRAINT "budget_alert_deliveries_alert_id_fkey" FOREIGN KEY ("alert_id") REFERENCES "budget_alert_outbox"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Budget alerts are decided at settlement, inside the settling statement's own transaction, by triggers on
-- usage_ledger. WHY triggers: the ledger's statements are being reshaped (grouped settlements, a partitioned table,
-- the reaper's settlements and amendments); whatever statement moves a row's settled cost also moves the
-- tenant-month's spend here, in the same transaction, so an alert is in the outbox exactly when its spend is in the
-- ledger (rolled back together, committed together). WHY statement-level with transition tables: one statement
-- settling many rows (group commit) updates each tenant-month once, and always in (tenant, month) order, so two
-- batches settling the same tenants lock their spend rows in one order and never deadlock.
--
-- A threshold t fires when the month's settled spend reaches t% of the budget in force at that settlement
-- (spent * 100 >= budget * t), at most once per (tenant, month, threshold): the spend row's lock serialises every
-- settlement of the tenant-month, fired_thresholds remembers what fired, and the outbox's unique key would refuse a
-- second row anyway. So: raising the budget mid-month does not re-arm a threshold that already fired this month;
-- lowering it (or adding a threshold) makes a threshold already passed fire once, at the next settlement.
CREATE FUNCTION budget_alerts_add_spend(p_tenant uuid, p_month date, p_delta bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_spent bigint;
  v_fired int[];
  v_budget bigint;
  v_thresholds int[];
  v_new int[];
BEGIN
  INSERT INTO tenant_month_spend AS s (tenant_id, month, spent_micros) VALUES (p_tenant, p_month, p_delta)
  ON CONFLICT (tenant_id, month) DO UPDATE SET spent_micros = s.spent_micros + EXCLUDED.spent_micros, updated_at = now()
  RETURNING s.spent_micros, coalesce(s.fired_thresholds, '{}') INTO v_spent, v_fired;
  SELECT monthly_budget_micros, coalesce(alert_thresholds, '{}') INTO v_budget, v_thresholds FROM tenants WHERE id = p_tenant;
  IF v_budget IS NULL THEN
    RETURN;
  END IF;
  SELECT coalesce(array_agg(t ORDER BY t), '{}') INTO v_new
    FROM unnest(v_thresholds) AS t
   WHERE NOT (t = ANY (v_fired)) AND v_spent::numeric * 100 >= v_budget::numeric * t;
  IF cardinality(v_new) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO budget_alert_outbox (event_id, tenant_id, kind, month, threshold, spent_micros, budget_micros)
  SELECT gen_random_uuid(), p_tenant, 'THRESHOLD', p_month, t, v_spent, v_budget FROM unnest(v_new) AS t
  ON CONFLICT (tenant_id, month, threshold) DO NOTHING;
  UPDATE tenant_month_spend SET fired_thresholds = coalesce(fired_thresholds, '{}') || v_new
   WHERE tenant_id = p_tenant AND month = p_month;
END $$;

-- A row's contribution to spend is its cost once SETTLED (0 while HELD); an UPDATE adds new minus old.
CREATE FUNCTION budget_alerts_on_ledger_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT n.tenant_id, date_trunc('month', n.started_at AT TIME ZONE 'UTC')::date AS month,
           sum(CASE WHEN n.state = 'SETTLED' THEN n.cost_micros ELSE 0 END
             - CASE WHEN o.state = 'SETTLED' THEN o.cost_micros ELSE 0 END)::bigint AS delta
      FROM new_rows n JOIN old_rows o ON o.request_id = n.request_id
     WHERE (n.state = 'SETTLED' OR o.state = 'SETTLED')
     GROUP BY 1, 2
    HAVING sum(CASE WHEN n.state = 'SETTLED' THEN n.cost_micros ELSE 0 END
             - CASE WHEN o.state = 'SETTLED' THEN o.cost_micros ELSE 0 END) <> 0
     ORDER BY 1, 2
  LOOP
    PERFORM budget_alerts_add_spend(r.tenant_id, r.month, r.delta);
  END LOOP;
  RETURN NULL;
END $$;

-- Rows normally arrive HELD (cost 0); this covers a row written already settled (a copy, a backfill).
CREATE FUNCTION budget_alerts_on_ledger_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT n.tenant_id, date_trunc('month', n.started_at AT TIME ZONE 'UTC')::date AS month, sum(n.cost_micros)::bigint AS delta
      FROM new_rows n
     WHERE n.state = 'SETTLED'
     GROUP BY 1, 2
    HAVING sum(n.cost_micros) <> 0
     ORDER BY 1, 2
  LOOP
    PERFORM budget_alerts_add_spend(r.tenant_id, r.month, r.delta);
  END LOOP;
  RETURN NULL;
END $$;

-- Postgres allows a transition table only on a single-event trigger: one trigger per event.
CREATE TRIGGER usage_ledger_budget_alerts_update AFTER UPDATE ON usage_ledger
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION budget_alerts_on_ledger_update();
CREATE TRIGGER usage_ledger_budget_alerts_insert AFTER INSERT ON usage_ledger
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION budget_alerts_on_ledger_insert();

-- Spend settled before this migration, taken after the triggers exist (their lock holds settlements back until
-- this commits), so no settlement is counted twice or missed. Thresholds already passed fire at the next settlement.
INSERT INTO tenant_month_spend (tenant_id, month, spent_micros)
SELECT tenant_id, date_trunc('month', started_at AT TIME ZONE 'UTC')::date, sum(cost_micros)::bigint
  FROM usage_ledger WHERE state = 'SETTLED'
 GROUP BY 1, 2;
