-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "max_concurrent_requests" INTEGER;
