-- CreateEnum
CREATE TYPE "ModelAccessMode" AS ENUM ('ALL', 'ALLOW', 'DENY');

-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "model_access_list" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "model_access_mode" "ModelAccessMode" NOT NULL DEFAULT 'ALL',
ADD COLUMN     "suspended_at" TIMESTAMPTZ(3),
ADD COLUMN     "suspension_reason" TEXT;

-- AlterTable
ALTER TABLE "models" ADD COLUMN     "enabled" BOOLEAN NOT NULL DEFAULT true;
