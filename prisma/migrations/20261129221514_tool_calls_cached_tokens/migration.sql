-- AlterTable
ALTER TABLE "models" ADD COLUMN     "cache_write_micros_per_million" BIGINT,
ADD COLUMN     "cached_input_micros_per_million" BIGINT;

-- AlterTable
ALTER TABLE "model_prices" ADD COLUMN     "cache_write_micros_per_million" BIGINT,
ADD COLUMN     "cached_input_micros_per_million" BIGINT;

-- AlterTable
ALTER TABLE "usage_ledger" ADD COLUMN     "cache_write_micros_per_million" BIGINT,
ADD COLUMN     "cache_write_tokens" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "cached_input_micros_per_million" BIGINT,
ADD COLUMN     "cached_prompt_tokens" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "daily_rollups" ADD COLUMN     "cache_write_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cached_prompt_tokens" BIGINT NOT NULL DEFAULT 0;
