import { AppError } from '../errors';
import type { Logger } from '../infra/logger';
import { UpstreamError } from '../upstream/errors';
import type { ChatMessage, FinishReason, ToolCallDelta, ToolChoice, ToolDefinition, UpstreamClient, UpstreamEvent } from '../upstream/types';
import { estimatePromptTokens, skippedAttempt, type AttemptRecord, type UsageSource } from './attempts';
import type { ModelHealth } from './model-health';
import type { Plan, PlannedModel } from './plan';
import { chainFailed } from './run-with-fallback';

export interface RouteDeps {
  readonly upstream: UpstreamClient;
  readonly health: ModelHealth;
  /** Milliseconds, for latencies and ttftMs. Default Date.now. */
  readonly clock?: () => number;
  readonly logger?: Pick<Logger, 'warn'>;
}

export interface RouteRequest {
  readonly plan: Plan;
  readonly messages: readonly ChatMessage[];
  readonly maxTokens: number;
  readonly temperature?: number;
  readonly tools?: readonly ToolDefinition[];
  readonly toolChoice?: ToolChoice;
  /** The client went away: aborts the upstream request at once. */
  readonly signal: AbortSignal;
  /** 'stream': deltas reach the client as they come. 'collect': the client sees only the end result. */
  readonly mode: 'stream' | 'collect';
  readonly idleTimeoutMs: number;
  /** The whole request, every attempt included. */
  readonly totalTimeoutMs: number;
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
  /** From routeStream's start to the first delta; null when none came. */
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

export type RouteEvent =
  | { readonly type: 'attempt'; readonly model: string }
  /** `chunks`: upstream chunks in this text (1 in stream mode; collect mode coalesces what arrives together). */
  | { readonly type: 'delta'; readonly model: string; readonly text: string; readonly chunks: number }
  /** The tool-call pieces of one upstream chunk, as the upstream sent them (one chunk of output). */
  | { readonly type: 'tool_calls'; readonly model: string; readonly deltas: readonly ToolCallDelta[] }
  | { readonly type: 'discard'; readonly model: string; readonly attempt: AttemptRecord }
  | RouteDone
  | RouteFailed;

type AttemptEnd =
  | { readonly kind: 'completed'; readonly deltas: number; readonly usage: ProviderUsage | null; readonly finishReason: FinishReason | null }
  | { readonly kind: 'failed'; readonly deltas: number; readonly usage: ProviderUsage | null; readonly finishReason: FinishReason | null; readonly error: unknown };

interface ProviderUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
}

/** How one failed attempt reads to the router. */
type Failure =
  | { readonly kind: 'cancelled'; readonly code: 'CLIENT_CANCELLED' }
  | { readonly kind: 'total'; readonly code: 'TOTAL_TIMEOUT' }
  | { readonly kind: 'retryable'; readonly code: string; readonly retryAfterMs?: number }
  | { readonly kind: 'auth'; readonly code: string }
  | { readonly kind: 'fatal'; readonly code: string; readonly status: number };

/**
 * The one streaming code path of a chat request, for the mutation ('collect') and the subscription ('stream').
 *
 * Walks the plan's chain: models the health skips are recorded (CIRCUIT_OPEN / RETRY_AFTER) and not called; each
 * attempt emits `attempt`, then its `delta`s and `tool_calls` (a tool-call chunk is output like a content chunk: it
 * counts toward the estimate, the first token and the mid-stream rule). Every attempt is recorded in the health:
 * retryable failures count against the breaker (and Retry-After is honoured), client aborts, the total deadline,
 * fatal 4xx and a refused gateway key do not.
 *
 * Exactly one terminal event ends the generator:
 * - `done` COMPLETED: an attempt finished. Usage is the provider's, or ESTIMATED (prompt: estimatePromptTokens,
 *   completion: one token per delta) when the stream carried none.
 * - The mid-stream rule, 'stream' mode: once a delta was yielded the model never changes. A later cut or unreadable
 *   stream ends `done` UPSTREAM_INTERRUPTED, an idle stall or the total deadline `done` TIMEOUT, with usage
 *   ESTIMATED from what was streamed (the provider's if it had sent it).
 * - 'collect' mode: a retryable failure after partial content emits `discard` (the attempt with its consumed
 *   tokens, ESTIMATED; the caller drops that attempt's text) and falls back like any other retryable failure. The
 *   total deadline after partial content ends `done` TIMEOUT with the partial answer.
 * - The client's signal: `done` CLIENT_CANCELLED when the current attempt had delivered content, else `failed`
 *   CLIENT_CANCELLED (its error is UPSTREAM_UNAVAILABLE; nobody is left to read it).
 * - `failed` FAILED: every model failed or was skipped, the gateway's key was refused (the whole chain would
 *   fail), or the total deadline passed before content (all UPSTREAM_UNAVAILABLE with `extensions.attempts`); or
 *   the upstream refused the request as invalid (a fatal 4xx: BAD_USER_INPUT, no fallback).
 * `attempts` in the terminal event lists every attempt and skip, with the tokens each consumed, for billing.
 *
 * The client's signal and the total deadline abort the in-flight upstream request itself, so a pending read ends
 * at once; leaving the loop early (return()) aborts it too. No upstream request outlives the generator.
 */
export async function* routeStream(deps: RouteDeps, req: RouteRequest): AsyncGenerator<RouteEvent, void, undefined> {
  const clock = deps.clock ?? Date.now;
  const startedAt = clock();
  const { plan } = req;
  const attempts: AttemptRecord[] = [];
  const promptEstimate = estimatePromptTokens(req.messages, req.tools);
  let ttftMs: number | null = null;
  const onFirstDelta = (): void => {
    ttftMs ??= clock() - startedAt;
  };

  const total = new AbortController();
  const totalTimer = setTimeout(() => total.abort(), req.totalTimeoutMs);

  const failed = (error: AppError, outcome: RouteFailed['outcome'] = 'FAILED'): RouteFailed => ({
    type: 'failed',
    outcome,
    attempts,
    error,
  });
  const cancelledBeforeContent = (): RouteFailed =>
    failed(chainFailed(plan, attempts, 'the client cancelled the request before any content'), 'CLIENT_CANCELLED');
  const totalTimedOut = (): RouteFailed =>
    failed(chainFailed(plan, attempts, `no model of profile ${plan.profile.name} answered within ${req.totalTimeoutMs} ms`));

  try {
    for (const planned of plan.chain) {
      const id = planned.model.id;
      if (req.signal.aborted) return yield cancelledBeforeContent();
      if (total.signal.aborted) return yield totalTimedOut();
      const availability = deps.health.check(id);
      if (!availability.ok) {
        attempts.push(skippedAttempt(id, availability.reason));
        continue;
      }

      yield { type: 'attempt', model: id };
      const attemptStart = clock();
      const end = yield* runAttempt(deps.upstream, req, planned, total.signal, onFirstDelta);
      const latencyMs = clock() - attemptStart;
      const delivered = end.deltas > 0;
      const usage: RouteUsage = end.usage
        ? { ...end.usage, source: 'PROVIDER' }
        : {
            promptTokens: delivered || end.kind === 'completed' ? promptEstimate : 0,
            completionTokens: end.deltas,
            cachedPromptTokens: 0,
            cacheWriteTokens: 0,
            source: 'ESTIMATED',
          };
      const record = (error: string | null): AttemptRecord => ({
        model: id,
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
      const done = (outcome: RouteOutcome): RouteDone => ({
        type: 'done',
        model: id,
        outcome,
        usage,
        attempts,
        ttftMs,
        finishReason: outcome === 'COMPLETED' ? end.finishReason : null,
      });

      if (end.kind === 'completed') {
        deps.health.recordSuccess(id);
        attempts.push(record(null));
        return yield done('COMPLETED');
      }

      const f = readFailure(end.error, req.signal, total.signal);
      attempts.push(record(f.code));
      if (f.kind === 'retryable') {
        deps.health.recordFailure(id);
        if (f.retryAfterMs !== undefined) deps.health.markRetryAfter(id, f.retryAfterMs);
      } else {
        deps.health.recordNeutral(id);
      }
      if (f.kind !== 'cancelled') {
        deps.logger?.warn({ model: id, profile: plan.profile.name, code: f.code, delivered: end.deltas }, 'upstream attempt failed');
      }

      switch (f.kind) {
        case 'cancelled':
          return yield delivered ? done('CLIENT_CANCELLED') : cancelledBeforeContent();
        case 'total':
          return yield delivered ? done('TIMEOUT') : totalTimedOut();
        case 'auth':
          return yield failed(chainFailed(plan, attempts));
        case 'fatal':
          if (delivered && req.mode === 'stream') return yield done('UPSTREAM_INTERRUPTED');
          return yield failed(
            new AppError('BAD_USER_INPUT', `the upstream model refused the request as invalid (${f.code})`, {
              attempts: [...attempts],
              upstreamStatus: f.status,
            }),
          );
        case 'retryable':
          if (delivered) {
            if (req.mode === 'stream') return yield done(f.code === 'STALL' ? 'TIMEOUT' : 'UPSTREAM_INTERRUPTED');
            yield { type: 'discard', model: id, attempt: attempts[attempts.length - 1]! };
          }
          continue;
      }
    }
    yield failed(chainFailed(plan, attempts));
  } finally {
    clearTimeout(totalTimer);
  }
}

/**
 * One upstream call: yields its deltas, returns how it ended. Its own AbortController follows the client's signal
 * and the total deadline; its finally aborts the request whenever the call did not finish (failure, or the
 * consumer leaving during a yield), so nothing stays open.
 */
async function* runAttempt(
  upstream: UpstreamClient,
  req: RouteRequest,
  planned: PlannedModel,
  totalSignal: AbortSignal,
  onFirstDelta: () => void,
): AsyncGenerator<RouteEvent, AttemptEnd, undefined> {
  const id = planned.model.id;
  const ac = new AbortController();
  const abort = (): void => ac.abort();
  req.signal.addEventListener('abort', abort, { once: true });
  totalSignal.addEventListener('abort', abort, { once: true });
  if (req.signal.aborted || totalSignal.aborted) ac.abort();

  let deltas = 0;
  let usage: ProviderUsage | null = null;
  let finishReason: FinishReason | null = null;
  let finished = false;
  let iterator: AsyncIterator<UpstreamEvent> | undefined;
  try {
    const events = upstream.streamChat({
      model: id,
      messages: req.messages,
      maxTokens: req.maxTokens,
      ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
      ...(req.tools === undefined ? {} : { tools: req.tools }),
      ...(req.toolChoice === undefined ? {} : { toolChoice: req.toolChoice }),
      region: req.plan.region,
      signal: ac.signal,
      firstTokenTimeoutMs: planned.firstTokenTimeoutMs,
      idleTimeoutMs: req.idleTimeoutMs,
      coalesce: req.mode === 'collect',
    });
    iterator = events[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      const ev = next.value;
      switch (ev.type) {
        case 'usage':
          usage = {
            promptTokens: ev.promptTokens,
            completionTokens: ev.completionTokens,
            cachedPromptTokens: ev.cachedPromptTokens,
            cacheWriteTokens: ev.cacheWriteTokens,
          };
          break;
        case 'finish':
          finishReason = ev.reason;
          break;
        case 'tool_calls':
          // A tool-call chunk is output like a content chunk: it counts toward the estimate and the mid-stream rule.
          deltas += 1;
          onFirstDelta();
          yield { type: 'tool_calls', model: id, deltas: ev.deltas };
          break;
        case 'delta': {
          const chunks = ev.chunks ?? 1;
          deltas += chunks;
          onFirstDelta();
          yield { type: 'delta', model: id, text: ev.text, chunks };
          break;
        }
      }
    }
    finished = true;
    return { kind: 'completed', deltas, usage, finishReason };
  } catch (error) {
    finished = true;
    return { kind: 'failed', deltas, usage, finishReason, error };
  } finally {
    req.signal.removeEventListener('abort', abort);
    totalSignal.removeEventListener('abort', abort);
    if (!finished) {
      // The consumer left during a yield: abort the request, then let the upstream generator run its cleanup.
      ac.abort();
      await iterator?.return?.().catch(() => undefined);
    }
  }
}

function readFailure(e: unknown, clientSignal: AbortSignal, totalSignal: AbortSignal): Failure {
  // Whatever error an abort surfaced as, the abort is the cause.
  if (clientSignal.aborted) return { kind: 'cancelled', code: 'CLIENT_CANCELLED' };
  if (totalSignal.aborted) return { kind: 'total', code: 'TOTAL_TIMEOUT' };
  if (!(e instanceof UpstreamError)) return { kind: 'retryable', code: 'UNEXPECTED' };
  const f = e.failure;
  switch (f.kind) {
    case 'retryable':
      return f.retryAfterMs === undefined ? { kind: 'retryable', code: f.code } : { kind: 'retryable', code: f.code, retryAfterMs: f.retryAfterMs };
    case 'auth':
      return { kind: 'auth', code: f.code };
    case 'fatal':
      return { kind: 'fatal', code: f.code, status: f.status };
    case 'aborted':
      // Neither of our signals fired, so something else aborted it: not the model's answer, try the next one.
      return { kind: 'retryable', code: 'ABORTED' };
  }
}
