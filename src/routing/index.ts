export { DEFAULT_ROUTING_OPTIONS, buildModelPlan, buildPlan, firstTokenDeadlineMs, type Plan, type PlannedModel, type RoutingOptions } from './plan';
export { estimatePromptTokens, skippedAttempt, type AttemptRecord, type UsageSource } from './attempts';
export { makeModelHealth, type Availability, type BreakerState, type ModelHealth, type ModelHealthOptions } from './model-health';
export { nextStep, type AttemptFailure, type Failure, type Mode, type RetryableCode, type Step } from './fallback-step';
export {
  chainFailed,
  routeChat,
  type CallEnd,
  type CallModel,
  type ModelCall,
  type RouteDeps,
  type RouteDone,
  type RouteEnd,
  type RouteFailed,
  type RouteOutcome,
  type RouteRequest,
  type RouteSink,
  type RouteUsage,
} from './route-stream';
