-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "Region" AS ENUM ('US_EAST', 'ASIA');

-- CreateEnum
CREATE TYPE "OverrideScope" AS ENUM ('ALL', 'US_EAST', 'ASIA');

-- CreateEnum
CREATE TYPE "Outcome" AS ENUM ('COMPLETED', 'CLIENT_CANCELLED', 'UPSTREAM_INTERRUPTED', 'TIMEOUT', 'FAILED');

-- CreateEnum
CREATE TYPE "UsageSource" AS ENUM ('PROVIDER', 'ESTIMATED');

-- CreateEnum
CREATE TYPE "LedgerState" AS ENUM ('HELD', 'SETTLED');

-- CreateEnum
CREATE TYPE "IdempotencyState" AS ENUM ('RUNNING', 'DONE');

-- CreateTable
CREATE TABLE "tenants" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "monthly_budget_micros" BIGINT,
    "requests_per_minute" INTEGER,
    "tokens_per_minute" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "hash" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "models" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "output_micros_per_million" BIGINT,
    "input_micros_per_million" BIGINT,
    "ttft_us_east_ms" INTEGER NOT NULL,
    "ttft_asia_ms" INTEGER,
    "tokens_per_second" INTEGER NOT NULL,
    "price_set_by_admin" BOOLEAN NOT NULL DEFAULT false,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "models_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "model_prices" (
    "id" BIGSERIAL NOT NULL,
    "model_id" TEXT NOT NULL,
    "output_micros_per_million" BIGINT,
    "input_micros_per_million" BIGINT,
    "effective_from" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "source" TEXT NOT NULL,

    CONSTRAINT "model_prices_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "profiles" (
    "name" TEXT NOT NULL,
    "model_id" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "default_max_tokens" INTEGER NOT NULL,
    "max_tokens_cap" INTEGER NOT NULL,

    CONSTRAINT "profiles_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "model_fallbacks" (
    "model_id" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "fallback_model_id" TEXT NOT NULL,

    CONSTRAINT "model_fallbacks_pkey" PRIMARY KEY ("model_id","position")
);

-- CreateTable
CREATE TABLE "profile_overrides" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "profile" TEXT NOT NULL,
    "scope" "OverrideScope" NOT NULL DEFAULT 'ALL',
    "model_id" TEXT NOT NULL,
    "replace_fallbacks" BOOLEAN NOT NULL DEFAULT false,
    "fallbacks" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "profile_overrides_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "usage_ledger" (
    "id" BIGSERIAL NOT NULL,
    "request_id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "api_key_id" UUID,
    "profile" TEXT NOT NULL,
    "region" "Region" NOT NULL,
    "planned_model" TEXT NOT NULL,
    "model" TEXT,
    "attempts" JSONB NOT NULL DEFAULT '[]',
    "max_tokens" INTEGER NOT NULL,
    "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "completion_tokens" INTEGER NOT NULL DEFAULT 0,
    "unpriced_prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "input_micros_per_million" BIGINT,
    "output_micros_per_million" BIGINT,
    "price_snapshot" JSONB NOT NULL,
    "cost_micros" BIGINT NOT NULL DEFAULT 0,
    "hold_micros" BIGINT NOT NULL DEFAULT 0,
    "outcome" "Outcome",
    "usage_source" "UsageSource",
    "state" "LedgerState" NOT NULL DEFAULT 'HELD',
    "lease_expires_at" TIMESTAMPTZ(3) NOT NULL,
    "checkpoint_tokens" INTEGER NOT NULL DEFAULT 0,
    "checkpoint_model" TEXT,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ended_at" TIMESTAMPTZ(3),
    "idempotency_key" TEXT,

    CONSTRAINT "usage_ledger_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "idempotency_keys" (
    "tenant_id" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "input_hash" TEXT NOT NULL,
    "request_id" UUID,
    "state" "IdempotencyState" NOT NULL DEFAULT 'RUNNING',
    "result" JSONB,
    "lease_expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY ("tenant_id","key")
);

-- CreateTable
CREATE TABLE "audit_log" (
    "id" BIGSERIAL NOT NULL,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "target_type" TEXT NOT NULL,
    "target_id" TEXT NOT NULL,
    "tenant_id" UUID,
    "old_value" JSONB,
    "new_value" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "daily_rollups" (
    "tenant_id" UUID NOT NULL,
    "day" DATE NOT NULL,
    "model" TEXT NOT NULL,
    "profile" TEXT NOT NULL,
    "api_key_id" TEXT NOT NULL,
    "requests" BIGINT NOT NULL,
    "prompt_tokens" BIGINT NOT NULL,
    "unpriced_prompt_tokens" BIGINT NOT NULL,
    "completion_tokens" BIGINT NOT NULL,
    "cost_micros" BIGINT NOT NULL,
    "computed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "daily_rollups_pkey" PRIMARY KEY ("tenant_id","day","model","profile","api_key_id")
);

-- CreateTable
CREATE TABLE "rollup_days" (
    "day" DATE NOT NULL,
    "computed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rollup_days_pkey" PRIMARY KEY ("day")
);

-- CreateIndex
CREATE UNIQUE INDEX "tenants_name_key" ON "tenants"("name");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_hash_key" ON "api_keys"("hash");

-- CreateIndex
CREATE INDEX "api_keys_tenant_id_idx" ON "api_keys"("tenant_id");

-- CreateIndex
CREATE INDEX "model_prices_model_id_effective_from_idx" ON "model_prices"("model_id", "effective_from");

-- CreateIndex
CREATE UNIQUE INDEX "profile_overrides_tenant_id_profile_scope_key" ON "profile_overrides"("tenant_id", "profile", "scope");

-- CreateIndex
CREATE UNIQUE INDEX "usage_ledger_request_id_key" ON "usage_ledger"("request_id");

-- CreateIndex
CREATE INDEX "usage_ledger_tenant_id_started_at_idx" ON "usage_ledger"("tenant_id", "started_at");

-- CreateIndex
CREATE INDEX "usage_ledger_state_lease_expires_at_idx" ON "usage_ledger"("state", "lease_expires_at");

-- CreateIndex
CREATE INDEX "idempotency_keys_expires_at_idx" ON "idempotency_keys"("expires_at");

-- CreateIndex
CREATE INDEX "audit_log_target_type_target_id_created_at_idx" ON "audit_log"("target_type", "target_id", "created_at");

-- CreateIndex
CREATE INDEX "audit_log_created_at_idx" ON "audit_log"("created_at");

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "model_prices" ADD CONSTRAINT "model_prices_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "model_fallbacks" ADD CONSTRAINT "model_fallbacks_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "profile_overrides" ADD CONSTRAINT "profile_overrides_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage_ledger" ADD CONSTRAINT "usage_ledger_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
