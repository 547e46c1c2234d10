import { AppError, UnreachableCaseError } from '../errors';
import type { Logger } from '../infra/logger';
import type { FinishReason, UpstreamEvent } from '../upstream/types';
import { skippedAttempt, type AttemptRecord, type UsageSource } from './attempts';
import { failureCode, healthVerdict, nextStep, readFailure, type AttemptFailure, type Failure, type Mode } from './fallback-step';
import type { ModelHealth } from './model-health';
import type { Plan, PlannedModel } from './plan';

/** One model call, as the walk asks for it. */
export interface ModelCall {
  readonly planned: PlannedModel;
  /** Aborted when the client leaves or the total deadline passes: the call must end at once. */
  readonly signal: AbortSignal;
}

/** How a call ended: completed, or the failure its I/O reported. */
export type CallEnd = { readonly ok: true } | { readonly ok: false; readonly failure: AttemptFailure };

/**
 * The I/O of one attempt, supplied by the caller: streams the model's answer, handing the events of each network
 * read to `onRead` synchronously and in order, and resolves how the call ended. A rejection is a bug in the I/O:
 * the walk records it as UNEXPECTED and tries the next model.
 */
export type CallModel = (call: ModelCall, onRead: (events: readonly UpstreamEvent[]) => void) => Promise<CallEnd>;

export interface RouteDeps {
  readonly call: CallModel;
  readonly health: ModelHealth;
  /** Milliseconds, for latencies and ttftMs. Default Date.now. */
  readonly clock?: () => number;
  readonly logger?: Pick<Logger, 'warn'>;
}

export interface RouteRequest {
  readonly plan: Plan;
  /** The prompt's tokens as the gateway estimates them, billed when the upstream reports no usage. */
  readonly promptEstimate: number;
  /** The client went away: aborts the upstream call at once. */
  readonly signal: AbortSignal;
  /** 'stream': output reaches the client as it comes. 'collect': the client sees only the end result. */
  readonly mode: Mode;
  /** The whole request, every attempt included. */
  readonly totalTimeoutMs: number;
}

/** Where the walk's output goes, synchronously except `discard` (the caller may grow the hold before the next try). */
export interface RouteSink {
  attempt(model: string): void;
  /** The events of one network read of the current attempt, as the upstream sent them (usage and finish included). */
  output(model: string, events: readonly UpstreamEvent[], outputChunks: number): void;
  /** Collect mode: the attempt failed after partial output; its text is void, its tokens are billed. */
  discard(model: string, attempt: AttemptRecord): Promise<void>;
}

export interface RouteUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Of promptTokens, as the provider reported them (0 when ESTIMATED). */
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
  readonly source: UsageSource;
}

export type RouteOutcome = 'COMPLETED' | 'UPSTREAM_INTERRUPTED' | 'TIMEOUT' | 'CLIENT_CANCELLED';

export interface RouteDone {
  readonly type: 'done';
  readonly model: string;
  readonly outcome: RouteOutcome;
  /** The answering attempt's usage (discarded attempts carry their own in `attempts`). */
  readonly usage: RouteUsage;
  readonly attempts: readonly AttemptRecord[];
  /** From the walk's start to the first output; null when none came. */
  readonly ttftMs: number | null;
  /** The answering attempt's finish_reason; null when the stream ended without one (cut, stalled, cancelled). */
  readonly finishReason: FinishReason | null;
}

export interface RouteFailed {
  readonly type: 'failed';
  readonly outcome: 'FAILED' | 'CLIENT_CANCELLED';
  readonly attempts: readonly AttemptRecord[];
  /** UPSTREAM_UNAVAILABLE with `extensions.attempts`, or BAD_USER_INPUT when the upstream refused the request. */
  readonly error: AppError;
}

export type RouteEnd = RouteDone | RouteFailed;

/** What one attempt consumed and how it ended. */
interface AttemptTally {
  outputChunks: number;
  usage: Omit<RouteUsage, 'source'> | null;
  finishReason: FinishReason | null;
}

/**
 * The one fallback walker of a chat request, for the mutation ('collect') and the subscription ('stream').
 *
 * Walks the plan's chain: models the health skips are recorded (CIRCUIT_OPEN / RETRY_AFTER) and not called; each
 * attempt reports `attempt`, then its reads through `output` (a tool-call chunk is output like a content chunk: it
 * counts toward the estimate, the first token and the mid-stream rule). Every attempt is recorded in the health as
 * fallback-step.ts's healthVerdict says. What follows a failed attempt is fallback-step.ts's nextStep.
 *
 * Resolves with the walk's end: `done` (COMPLETED, or the partial answer's outcome) with usage the provider's, or
 * ESTIMATED (prompt: the request's estimate, completion: one token per output chunk) when the stream carried none;
 * or `failed`. `attempts` lists every attempt and skip, with the tokens each consumed, for billing. The client's
 * signal and the total deadline abort the call in flight, so a pending read ends at once.
 */
export async function routeChat(deps: RouteDeps, req: RouteRequest, sink: RouteSink): Promise<RouteEnd> {
  const clock = deps.clock ?? Date.now;
  const startedAt = clock();
  const { plan } = req;
  const attempts: AttemptRecord[] = [];
  let ttftMs: number | null = null;

  const total = new AbortController();
  const totalTimer = setTimeout(() => total.abort(), req.totalTimeoutMs);
  const failed = (why: GiveUp, code?: string, status?: number): RouteFailed => failedEnd(plan, attempts, why, req.totalTimeoutMs, code, status);

  try {
    for (const planned of plan.chain) {
      const id = planned.model.id;
      if (req.signal.aborted) return failed('cancelled');
      if (total.signal.aborted) return failed('total');
      const availability = deps.health.check(id);
      if (!availability.ok) {
        attempts.push(skippedAttempt(id, availability.reason));
        continue;
      }

      sink.attempt(id);
      const attemptStart = clock();
      const tally: AttemptTally = { outputChunks: 0, usage: null, finishReason: null };
      const onRead = (events: readonly UpstreamEvent[]): void => {
        const chunks = tallyRead(tally, events);
        if (chunks === 0) return; // a read of usage or finish_reason only: nothing to show
        ttftMs ??= clock() - startedAt;
        sink.output(id, events, chunks);
      };
      const end = await callOnce(deps.call, planned, req.signal, total.signal, onRead);
      const delivered = tally.outputChunks > 0;
      const usage = usageOf(tally, delivered || end.ok, req.promptEstimate);
      const record = attemptRecord(id, clock() - attemptStart, usage);
      const done = (outcome: RouteOutcome): RouteDone => ({
        type: 'done',
        model: id,
        outcome,
        usage,
        attempts,
        ttftMs,
        finishReason: outcome === 'COMPLETED' ? tally.finishReason : null,
      });

      if (end.ok) {
        deps.health.recordSuccess(id);
        attempts.push(record(null));
        return done('COMPLETED');
      }
      const f = readFailure(end.failure, req.signal.aborted, total.signal.aborted);
      attempts.push(record(failureCode(f)));
      applyVerdict(deps.health, id, f);
      if (f.kind !== 'cancelled') {
        deps.logger?.warn({ model: id, profile: plan.profile.name, code: failureCode(f), delivered: tally.outputChunks }, 'upstream attempt failed');
      }
      const step = nextStep(f, delivered, req.mode);
      switch (step.kind) {
        case 'end':
          return done(step.outcome);
        case 'give-up':
          return f.kind === 'fatal' ? failed(step.why, f.code, f.status) : failed(step.why);
        case 'discard-and-next':
          await sink.discard(id, attempts[attempts.length - 1]!);
          continue;
        case 'next':
          continue;
        default:
          throw new UnreachableCaseError(step);
      }
    }
    return failed('chain');
  } finally {
    clearTimeout(totalTimer);
  }
}

/** Counts a read's output chunks (content and tool-call pieces) and keeps its usage and finish_reason. */
function tallyRead(tally: AttemptTally, events: readonly UpstreamEvent[]): number {
  let chunks = 0;
  for (const ev of events) {
    switch (ev.type) {
      case 'delta':
      case 'tool_calls':
        chunks++;
        break;
      case 'finish':
        tally.finishReason = ev.reason;
        break;
      case 'usage':
        tally.usage = {
          promptTokens: ev.promptTokens,
          completionTokens: ev.completionTokens,
          cachedPromptTokens: ev.cachedPromptTokens,
          cacheWriteTokens: ev.cacheWriteTokens,
        };
        break;
      default:
        throw new UnreachableCaseError(ev);
    }
  }
  tally.outputChunks += chunks;
  return chunks;
}

/** The provider's usage, or the estimate: the prompt once the model answered something, one token per chunk. */
function usageOf(tally: AttemptTally, answered: boolean, promptEstimate: number): RouteUsage {
  if (tally.usage) return { ...tally.usage, source: 'PROVIDER' };
  return { promptTokens: answered ? promptEstimate : 0, completionTokens: tally.outputChunks, cachedPromptTokens: 0, cacheWriteTokens: 0, source: 'ESTIMATED' };
}

function attemptRecord(model: string, latencyMs: number, usage: RouteUsage) {
  return (error: AttemptRecord['error']): AttemptRecord => ({
    model,
    ok: error === null,
    error,
    latencyMs,
    promptTokens: usage.promptTokens,
    completionTokens: usage.completionTokens,
    usageSource: usage.source,
    // Only when the provider reported a cache: attempts without one keep their earlier shape.
    ...(usage.cachedPromptTokens > 0 ? { cachedPromptTokens: usage.cachedPromptTokens } : {}),
    ...(usage.cacheWriteTokens > 0 ? { cacheWriteTokens: usage.cacheWriteTokens } : {}),
  });
}

/** One call under its own signal, which follows the client's and the total deadline's; it is detached afterwards. */
async function callOnce(
  call: CallModel,
  planned: PlannedModel,
  client: AbortSignal,
  total: AbortSignal,
  onRead: (events: readonly UpstreamEvent[]) => void,
): Promise<CallEnd | { ok: false; failure: null }> {
  const ac = new AbortController();
  const abort = (): void => ac.abort();
  client.addEventListener('abort', abort, { once: true });
  total.addEventListener('abort', abort, { once: true });
  if (client.aborted || total.aborted) ac.abort();
  try {
    return await call({ planned, signal: ac.signal }, onRead);
  } catch {
    return { ok: false, failure: null };
  } finally {
    client.removeEventListener('abort', abort);
    total.removeEventListener('abort', abort);
    ac.abort(); // nothing of this attempt outlives it
  }
}

function applyVerdict(health: ModelHealth, model: string, f: Failure): void {
  const v = healthVerdict(f);
  if (!v.counts) return health.recordNeutral(model);
  health.recordFailure(model);
  if (v.retryAfterMs !== undefined) health.markRetryAfter(model, v.retryAfterMs);
}

type GiveUp = 'chain' | 'cancelled' | 'total' | 'invalid';

/** The walk's end when no attempt answered: cancelled by the client, or FAILED with the reason the walk gave up. */
function failedEnd(plan: Plan, attempts: readonly AttemptRecord[], why: GiveUp, totalTimeoutMs: number, code?: string, status?: number): RouteFailed {
  return {
    type: 'failed',
    outcome: why === 'cancelled' ? 'CLIENT_CANCELLED' : 'FAILED',
    attempts,
    error: giveUpError(plan, attempts, why, totalTimeoutMs, code, status),
  };
}

function giveUpError(plan: Plan, attempts: readonly AttemptRecord[], why: GiveUp, totalTimeoutMs: number, code?: string, status?: number): AppError {
  switch (why) {
    case 'chain':
      return chainFailed(plan, attempts);
    case 'cancelled':
      return chainFailed(plan, attempts, 'the client cancelled the request before any content');
    case 'total':
      return chainFailed(plan, attempts, `no model of profile ${plan.profile.name} answered within ${totalTimeoutMs} ms`);
    case 'invalid':
      return new AppError('BAD_USER_INPUT', `the upstream model refused the request as invalid (${code})`, { attempts: [...attempts], upstreamStatus: status });
    default:
      throw new UnreachableCaseError(why);
  }
}

/** UPSTREAM_UNAVAILABLE for a plan whose every model failed or was skipped. */
export function chainFailed(plan: Plan, attempts: readonly AttemptRecord[], message?: string): AppError {
  // The client sees the contract's Attempt fields only; the token counts are the ledger's business.
  return new AppError('UPSTREAM_UNAVAILABLE', message ?? `every model of profile ${plan.profile.name} failed`, {
    attempts: attempts.map(({ model, ok, error, latencyMs }) => ({ model, ok, error, latencyMs })),
  });
}
