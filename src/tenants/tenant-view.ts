import type { Micros } from '../accounting/money';
import type { ModelAccess, Suspension } from './tenant-store';

/** A tenant as the API shows it: its settings and this month's numbers from the budget gate. */
export interface TenantView {
  readonly id: string;
  readonly name: string;
  readonly monthlyBudgetMicros: Micros | null;
  readonly spentMicros: Micros;
  readonly heldMicros: Micros;
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
  readonly maxConcurrentRequests: number | null;
  readonly suspension: Suspension | null;
  readonly modelAccess: ModelAccess;
}
