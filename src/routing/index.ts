export { DEFAULT_ROUTING_OPTIONS, buildModelPlan, buildPlan, firstTokenDeadlineMs, type Plan, type PlannedModel, type RoutingOptions } from './plan';
export {
  describeError,
  estimatePromptTokens,
  skippedAttempt,
  type AttemptRecord,
  type ErrorDescription,
  type UsageSource,
} from './attempts';
export { makeModelHealth, type Availability, type BreakerState, type ModelHealth, type ModelHealthOptions } from './model-health';
export { chainFailed, runWithFallback, type AttemptUsage, type FallbackOptions, type FallbackResult } from './run-with-fallback';
export {
  routeStream,
  type RouteDeps,
  type RouteDone,
  type RouteEvent,
  type RouteFailed,
  type RouteOutcome,
  type RouteRequest,
  type RouteUsage,
} from './route-stream';
