import { randomUUID } from 'node:crypto';
import type { AdmitInput, Limiter } from '../../src/limits';

/** An admission with no limits of its own (no windows, no budget, nothing held) of 100 estimated tokens; `over` sets the rest. */
export function admitInput(tenantId: string, month: string, over: Partial<AdmitInput> = {}): AdmitInput {
  return {
    tenantId,
    requestId: `r-${randomUUID()}`,
    month,
    requestsPerMinute: null,
    tokensPerMinute: null,
    tokensEstimate: 100,
    budgetMicros: null,
    holdMicros: 0n,
    holdTtlMs: 60_000,
    ...over,
  };
}

/** Seeds the tenant's month as the ledger would (nothing held, `spentMicros` spent), so admissions may run. */
export async function seedTenant(limiter: Limiter, tenantId: string, month: string, spentMicros = 0n): Promise<string> {
  expect(await limiter.reseed({ tenantId, month, spentMicros, holds: [] })).toEqual({ seeded: true });
  return tenantId;
}
