-- CreateEnum
CREATE TYPE "AdminScope" AS ENUM ('REPORTS', 'FULL');

-- AlterTable
ALTER TABLE "api_keys" ADD COLUMN     "monthly_budget_micros" BIGINT,
ADD COLUMN     "name" TEXT,
ADD COLUMN     "previous_expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "previous_hash" TEXT,
ADD COLUMN     "requests_per_minute" INTEGER,
ADD COLUMN     "rotated_at" TIMESTAMPTZ(3),
ADD COLUMN     "tokens_per_minute" INTEGER;

-- AlterTable
ALTER TABLE "audit_log" ADD COLUMN     "actor_key_id" UUID;

-- CreateTable
CREATE TABLE "admin_keys" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "scope" "AdminScope" NOT NULL,
    "hash" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "previous_hash" TEXT,
    "previous_expires_at" TIMESTAMPTZ(3),
    "rotated_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "admin_keys_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "admin_keys_name_key" ON "admin_keys"("name");

-- CreateIndex
CREATE UNIQUE INDEX "admin_keys_hash_key" ON "admin_keys"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "admin_keys_previous_hash_key" ON "admin_keys"("previous_hash");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_previous_hash_key" ON "api_keys"("previous_hash");
