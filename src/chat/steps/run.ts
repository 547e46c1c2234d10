import { AppError } from '../../errors';
import type { Logger } from '../../infra/logger';
import { estimatePromptTokens, routeChat, type CallModel, type ModelHealth, type RouteEnd, type RouteSink } from '../../routing';
import type { ChatMessage, ToolCallDelta, UpstreamClient } from '../../upstream';
import type { Limiter } from '../../limits';
import type { Checkpointer, InFlight } from '../../accounting/checkpointer';
import type { Ledger } from '../../accounting/ledger';
import { formatUsd } from '../../accounting/money';
import type { Drain } from '../drain';
import type { ChatInput } from '../chat-input';
import { StreamQueue } from '../stream-queue';
import { upstreamToolChoice, upstreamTools } from '../tool-input';
import type { Admitted } from './admit';
import { costOfAttempts } from './cost';
import { budgetOwner } from './gate';

export interface RunDeps {
  readonly upstream: UpstreamClient;
  readonly health: ModelHealth;
  readonly limiter: Pick<Limiter, 'extendHold'>;
  readonly ledger: Pick<Ledger, 'adjustHold'>;
  readonly checkpointer: Pick<Checkpointer, 'track'>;
  readonly idleTimeoutMs: number;
  readonly totalTimeoutMs: number;
  readonly holdTtlMs: number;
  readonly logger: Logger;
  /** Shutdown: runs still going at the drain deadline end with outcome SHUTDOWN. */
  readonly drain: Pick<Drain, 'deadline'>;
}

export type RunEvent =
  | { readonly type: 'delta'; readonly model: string; readonly text: string }
  | { readonly type: 'tool_calls'; readonly model: string; readonly deltas: readonly ToolCallDelta[] }
  /** Collect mode: the attempt so far failed after partial content; its text is void (its tokens are billed). */
  | { readonly type: 'discard' };

export type Terminal = RouteEnd;

/** Why this process ended a run itself, if it did: the drain deadline, its row reaped elsewhere, its tenant suspended. */
export type EndedBy = 'SHUTDOWN' | 'LEASE_LOST' | 'SUSPENDED' | null;

/** What settlement needs to know of a run, however it ended. */
export interface RunEnd {
  /** The router's last event; null when the consumer stopped iterating (or an exception) ended the run first. */
  readonly terminal: Terminal | null;
  /** Set when a fallback was refused for want of budget. */
  readonly denied: AppError | null;
  /** The tokens delivered by the attempt in progress, for a run that ended without a terminal event. */
  readonly inflight: Pick<InFlight, 'tokens' | 'model'>;
  readonly startedMs: number;
  readonly endedBy: EndedBy;
}

export interface Run {
  /** The content as it arrives; the caller must call end() once this stops, however it stops. */
  events(): AsyncGenerator<RunEvent>;
  /** Stops listening and (without a terminal event) the upstream at once; what settlement needs. */
  end(): RunEnd;
}

const ROLE = { SYSTEM: 'system', USER: 'user', ASSISTANT: 'assistant', TOOL: 'tool' } as const;

/**
 * Step 3 of a chat request: the fallback walk over upstream attempts (routing/route-stream.ts), its content handed
 * on as it comes. The client going away (`signal`), the drain deadline (SHUTDOWN) and the checkpointer finding the
 * row reaped elsewhere (LEASE_LOST) or its tenant suspended (SUSPENDED) each stop the upstream; a fallback after a
 * billed attempt first grows the hold.
 */
export function startRun(deps: RunDeps, a: Admitted, input: ChatInput, mode: 'collect' | 'stream', signal: AbortSignal): Run {
  const startedMs = Date.now();
  const inflight = deps.checkpointer.track(a.requestId, a.startedAt);
  const stops = new RunStops(signal, deps.drain.deadline, inflight);
  const ac = stops.controller;
  let terminal: Terminal | null = null;
  let denied: AppError | null = null;

  /**
   * The walk hands each upstream read over synchronously; the queue turns reads into events (the first token alone,
   * one event per read after it, `flushMs`), so the consumer pays one promise per event, never one per token.
   */
  async function* events(): AsyncGenerator<RunEvent> {
    const queue = new StreamQueue(input.flushMs ?? 0);
    const sink: RouteSink = {
      attempt: (model) => {
        inflight.model = model;
        inflight.tokens = 0;
      },
      output: (model, evs, chunks) => {
        inflight.tokens += chunks;
        queue.output(model, evs);
      },
      discard: async (_model, attempt) => {
        const refusal = await growHoldForFallback(deps, a, costOfAttempts([attempt], a.prices).costMicros);
        if (refusal) {
          denied = refusal;
          ac.abort(refusal);
        }
        inflight.tokens = 0;
        queue.discard();
      },
    };
    const walk = routeChat(
      { call: callModel(deps, a, input), health: deps.health, logger: deps.logger },
      routeRequest(deps, a, input, mode, ac.signal),
      sink,
    ).then(
      (end) => {
        terminal = end;
        queue.end();
      },
      (e: unknown) => queue.fail(e),
    );
    try {
      for (;;) {
        const item = await queue.next();
        if (item.type === 'end') return;
        if (item.type === 'error') throw item.error;
        yield item;
      }
    } finally {
      // The consumer stopped early: stop the upstream; the walk then ends at once and settlement sees its end.
      if (!terminal) ac.abort(new Error('run ended early'));
      await walk;
    }
  }

  return {
    events,
    end() {
      stops.detach();
      if (!terminal) ac.abort(new Error('run ended early')); // the consumer stopped iterating: stop the upstream at once
      return { terminal, denied, inflight, startedMs, endedBy: stops.endedBy };
    },
  };
}

/**
 * What stops a run's upstream call: the client going away, the drain deadline, the row reaped elsewhere, the tenant
 * suspended. Each aborts the one controller the walk listens to; all but the client record why (`endedBy`).
 */
class RunStops {
  readonly controller = new AbortController();
  endedBy: EndedBy = null;

  constructor(
    private readonly signal: AbortSignal,
    private readonly deadline: AbortSignal,
    private readonly inflight: InFlight,
  ) {
    if (signal.aborted) this.controller.abort(signal.reason);
    else signal.addEventListener('abort', this.onAbort, { once: true });
    if (deadline.aborted) this.onShutdown();
    else deadline.addEventListener('abort', this.onShutdown, { once: true });
    inflight.lost.addEventListener('abort', this.onLost, { once: true });
    inflight.suspended.addEventListener('abort', this.onSuspended, { once: true });
  }

  private readonly onAbort = (): void => this.controller.abort(this.signal.reason);
  private readonly onShutdown = (): void => this.stop('SHUTDOWN', this.deadline.reason);
  private readonly onLost = (): void => this.stop('LEASE_LOST', this.inflight.lost.reason);
  private readonly onSuspended = (): void => this.stop('SUSPENDED', this.inflight.suspended.reason);

  private stop(why: Exclude<EndedBy, null>, reason: unknown): void {
    this.endedBy ??= why;
    this.controller.abort(reason);
  }

  /** Stops listening: a run that ended must not be held by the signals that outlive it. */
  detach(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.deadline.removeEventListener('abort', this.onShutdown);
    this.inflight.lost.removeEventListener('abort', this.onLost);
    this.inflight.suspended.removeEventListener('abort', this.onSuspended);
  }
}

function routeRequest(deps: RunDeps, a: Admitted, input: ChatInput, mode: 'collect' | 'stream', signal: AbortSignal) {
  return {
    plan: a.plan,
    promptEstimate: estimatePromptTokens(upstreamMessages(input), upstreamTools(input)),
    signal,
    mode,
    totalTimeoutMs: deps.totalTimeoutMs,
  };
}

/** The walk's I/O: one upstream call for the planned model, its reads handed to the walk as they arrive. */
function callModel(deps: RunDeps, a: Admitted, input: ChatInput): CallModel {
  const messages = upstreamMessages(input);
  const tools = upstreamTools(input);
  const toolChoice = upstreamToolChoice(input);
  return ({ planned, signal }, onRead) =>
    deps.upstream.streamChat(
      {
        model: planned.model.id,
        messages,
        maxTokens: a.maxTokens,
        ...(input.temperature == null ? {} : { temperature: input.temperature }),
        ...(tools === undefined ? {} : { tools }),
        ...(toolChoice === undefined ? {} : { toolChoice }),
        region: a.plan.region,
        signal,
        firstTokenTimeoutMs: planned.firstTokenTimeoutMs,
        idleTimeoutMs: deps.idleTimeoutMs,
      },
      onRead,
    );
}

function upstreamMessages(input: ChatInput): ChatMessage[] {
  return input.messages.map((m) => ({
    role: ROLE[m.role],
    content: m.content,
    ...(m.toolCalls?.length ? { toolCalls: m.toolCalls } : {}),
    ...(m.toolCallId ? { toolCallId: m.toolCallId } : {}),
  }));
}

/**
 * The failed attempt's tokens are billed too: grow the hold by their cost before trying the next model. Returns
 * the BUDGET_EXCEEDED that stops the fallback when the budget left does not cover it.
 */
async function growHoldForFallback(deps: RunDeps, a: Admitted, costMicros: bigint): Promise<AppError | null> {
  // The ledger's hold grows first, so a reseed in between restores the larger (safe) amount.
  await deps.ledger.adjustHold(a.requestId, costMicros);
  const r = await deps.limiter.extendHold({
    tenantId: a.tenant.id,
    requestId: a.requestId,
    month: a.month,
    extraMicros: costMicros,
    budgetMicros: a.tenant.monthlyBudgetMicros,
    holdTtlMs: deps.holdTtlMs,
    apiKey: { id: a.keyId, budgetMicros: a.keyLimits.budgetMicros },
  });
  // The extension joins the request's one hold, released with it at settlement. Only a real budget denial stops
  // the fallback: a month state lost to a Redis flush is rebuilt from the ledger later.
  if (r.allowed || r.reason !== 'BUDGET_EXCEEDED') return null;
  await deps.ledger.adjustHold(a.requestId, -costMicros);
  return new AppError('BUDGET_EXCEEDED', `the model failed mid-answer and what is left of ${budgetOwner(r.scope)} budget does not cover another attempt`, {
    remainingUsd: formatUsd(r.remainingMicros),
    scope: r.scope,
  });
}
