/** The Redis fast gate: see limiter.ts for the contract and keys.ts for the key layout. */
export { makeLimiter, MONTH_STATE_TTL_MS, SETTLED_MARKER_TTL_MS } from './limiter';
export type { LimitsRedis } from './run-script';
export type {
  AdmitInput,
  AdmitResult,
  BudgetState,
  ExtendHoldInput,
  ExtendHoldResult,
  Limiter,
  RateLimitName,
  ReseedHold,
  ReseedInput,
  SettleInput,
} from './types';
