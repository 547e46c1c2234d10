-- AlterTable
ALTER TABLE "usage_ledger" ADD COLUMN     "amended_micros" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "amended_tokens" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "gate_applied_version" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "gate_pending_since" TIMESTAMPTZ(3),
ADD COLUMN     "settle_version" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE INDEX "usage_ledger_gate_pending_since_idx" ON "usage_ledger"("gate_pending_since");
