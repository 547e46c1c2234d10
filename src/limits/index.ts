/** The Redis fast gate: see limiter.ts for the contract and keys.ts for the key layout. */
export { makeLimiter, MONTH_STATE_TTL_MS, SETTLED_MARKER_MIN_MS, type LimiterOptions } from './limiter';
export { FORMAT_VERSION } from './keys';
export type { LimitsRedis } from './run-script';
export type {
  AdmitInput,
  AdmitResult,
  ApiKeyLimits,
  BudgetState,
  ExtendHoldInput,
  ExtendHoldResult,
  LimitScope,
  Limiter,
  RateLimitName,
  ReseedApiKey,
  ReseedHold,
  ReseedInput,
  ReseedSettled,
  SettleInput,
  WindowUse,
} from './types';
