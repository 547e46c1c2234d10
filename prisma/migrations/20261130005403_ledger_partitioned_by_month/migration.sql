-- The usage ledger becomes partitioned by UTC month of started_at, converted in place (hand-written: Prisma declares
-- a partitioned table as a plain one and cannot write this). WHY: the ledger grows without bound; a month partition
-- keeps every hot statement (hold, settle, checkpoint, reaper, reseed) on one small partition and its indexes, and
-- lets retention (LEDGER_RETENTION_MONTHS) drop a whole month at once instead of deleting rows.
--
-- A partitioned table's unique indexes must include the partition key: the primary key becomes (id, started_at),
-- and request ids, which must stay unique across months, get an unpartitioned table of their own
-- (ledger_request_ids), filled by an AFTER INSERT trigger so that every writer goes through it.
--
-- Rows whose month has no partition (a clock far off, a back-dated insert) go to a DEFAULT partition: never refused.
-- ledger_create_month() moves them into their month's partition when it is created.

-- 1. Request ids, unique across months; their month, to delete them with a dropped partition (BRIN: rows arrive
--    in time order, and the index costs almost nothing to keep).
CREATE TABLE "ledger_request_ids" (
    "request_id" UUID NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "ledger_request_ids_pkey" PRIMARY KEY ("request_id")
);
CREATE INDEX "ledger_request_ids_started_at_idx" ON "ledger_request_ids" USING brin ("started_at");
INSERT INTO "ledger_request_ids" ("request_id", "started_at") SELECT "request_id", "started_at" FROM "usage_ledger";

-- 2. Months that retention dropped (after verifying their rollups): reports read their days from the rollups only.
CREATE TABLE "ledger_archived_months" (
    "month" DATE NOT NULL,
    "requests" BIGINT NOT NULL,
    "cost_micros" BIGINT NOT NULL,
    "dropped_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_archived_months_pkey" PRIMARY KEY ("month")
);

-- 3. Triggers other migrations put on the ledger (budget alerts) are re-created on the new table once the rows are
--    copied, so the copy does not fire them (what they maintain already counts these rows).
CREATE TEMP TABLE "ledger_triggers" ON COMMIT DROP AS
  SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t WHERE t.tgrelid = '"usage_ledger"'::regclass AND NOT t.tgisinternal;

-- 4. The old table aside, without the indexes whose names the new one takes.
ALTER TABLE "usage_ledger" RENAME TO "usage_ledger_unpartitioned";
ALTER TABLE "usage_ledger_unpartitioned" DROP CONSTRAINT "usage_ledger_pkey";
ALTER TABLE "usage_ledger_unpartitioned" DROP CONSTRAINT "usage_ledger_tenant_id_fkey";
DROP INDEX "usage_ledger_request_id_key";
DROP INDEX "usage_ledger_tenant_id_started_at_idx";
DROP INDEX "usage_ledger_state_lease_expires_at_idx";
DROP INDEX "usage_ledger_gate_pending_since_idx";

-- 5. The partitioned table: the same columns, defaults and NOT NULLs, in the same order; it owns the id sequence.
CREATE TABLE "usage_ledger" (LIKE "usage_ledger_unpartitioned" INCLUDING DEFAULTS) PARTITION BY RANGE ("started_at");
ALTER SEQUENCE "usage_ledger_id_seq" OWNED BY "usage_ledger"."id";
CREATE TABLE "usage_ledger_default" PARTITION OF "usage_ledger" DEFAULT;

-- One month's partition, named usage_ledger_YYYY_MM, bounds [first of the month, first of the next) in UTC. Safe to
-- call from every instance at once (an advisory lock; false when it exists). Rows of the month already in the
-- DEFAULT partition are moved into it first, so the attach (which checks the DEFAULT partition) succeeds.
CREATE FUNCTION ledger_create_month(p_month timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_start timestamptz := date_trunc('month', p_month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  v_end timestamptz := (date_trunc('month', p_month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  v_name text := 'usage_ledger_' || to_char(p_month AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
  IF to_regclass(quote_ident(v_name)) IS NOT NULL THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('usage_ledger partitions'));
  IF to_regclass(quote_ident(v_name)) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE usage_ledger INCLUDING DEFAULTS)', v_name);
  EXECUTE format('WITH moved AS (DELETE FROM usage_ledger_default WHERE started_at >= %L AND started_at < %L RETURNING *)
                  INSERT INTO %I SELECT * FROM moved', v_start, v_end, v_name);
  -- The bounds as a constraint first: the attach then skips scanning the new table.
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (started_at >= %L AND started_at < %L)', v_name, v_name || '_bounds', v_start, v_end);
  EXECUTE format('ALTER TABLE usage_ledger ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_start, v_end);
  EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', v_name, v_name || '_bounds');
  RETURN true;
END $$;

-- 6. A partition for every month that has rows, and for this month and the next.
SELECT ledger_create_month(m)
  FROM generate_series(
         (SELECT date_trunc('month', least(min("started_at"), now()) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM "usage_ledger_unpartitioned"),
         now() + interval '1 month',
         interval '1 month') AS m
 WHERE EXISTS (SELECT 1 FROM "usage_ledger_unpartitioned" u
                WHERE u."started_at" >= date_trunc('month', m AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                  AND u."started_at" < (date_trunc('month', m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC')
    OR m >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

-- 7. The rows, then the keys and indexes (built per partition, once, after the copy).
INSERT INTO "usage_ledger" SELECT * FROM "usage_ledger_unpartitioned";
ALTER TABLE "usage_ledger" ADD CONSTRAINT "usage_ledger_pkey" PRIMARY KEY ("id", "started_at");
CREATE INDEX "usage_ledger_request_id_idx" ON "usage_ledger"("request_id");
CREATE INDEX "usage_ledger_tenant_id_started_at_idx" ON "usage_ledger"("tenant_id", "started_at");
CREATE INDEX "usage_ledger_state_lease_expires_at_idx" ON "usage_ledger"("state", "lease_expires_at");
CREATE INDEX "usage_ledger_gate_pending_since_idx" ON "usage_ledger"("gate_pending_since");
ALTER TABLE "usage_ledger" ADD CONSTRAINT "usage_ledger_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- 8. Request ids: a second row with an id already used (in any month) fails with ledger_request_ids_pkey.
CREATE FUNCTION ledger_record_request_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_request_ids (request_id, started_at) VALUES (NEW.request_id, NEW.started_at);
  RETURN NULL;
END $$;
CREATE TRIGGER "usage_ledger_request_id_unique" AFTER INSERT ON "usage_ledger"
  FOR EACH ROW EXECUTE FUNCTION ledger_record_request_id();

-- 9. The other triggers, now on the partitioned table; then the old table goes.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT def FROM ledger_triggers LOOP
    EXECUTE t.def;
  END LOOP;
END $$;
DROP TABLE "usage_ledger_unpartitioned";
