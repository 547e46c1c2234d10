import { AppError } from '../errors';
import type { GateApplier } from '../accounting/gate-applier';
import type { GateLedger } from '../accounting/gate-ledger';
import type { GateRepair } from '../limits/repair';
import type { Drain } from './drain';
import type { Logger } from '../infra/logger';
import { estimatePromptTokens, routeChat, type AttemptRecord, type CallModel, type ModelHealth, type RouteEnd } from '../routing';
import type { ChatMessage, FinishReason, UpstreamClient, UpstreamEvent } from '../upstream';
import type { Limiter } from '../limits';
import type { Checkpointer } from '../accounting/checkpointer';
import type { Ledger, Outcome, StoredAttempt, UsageSource } from '../accounting/ledger';
import { priceUsage } from '../accounting/pricing';
import { formatUsd } from '../accounting/money';
import type { Admitted } from './admission';
import type { ChatInput } from './chat-input';
import { upstreamToolChoice, upstreamTools } from './tool-input';
import type { AttemptView, UsageView } from './types';

export interface RunDeps {
  readonly upstream: UpstreamClient;
  readonly health: ModelHealth;
  readonly limiter: Limiter;
  readonly ledger: Ledger;
  readonly checkpointer: Checkpointer;
  readonly idleTimeoutMs: number;
  readonly totalTimeoutMs: number;
  readonly holdTtlMs: number;
  readonly logger: Logger;
  /** Where a settlement goes to the gate (Redis) after the ledger; retried from the ledger when Redis refuses. */
  readonly gate: Pick<GateApplier, 'apply'>;
  readonly gateLedger: Pick<GateLedger, 'amend'>;
  readonly gateRepair: Pick<GateRepair, 'releaseLeftoverHold'>;
  /** Shutdown: runs still going at the drain deadline end with outcome SHUTDOWN. */
  readonly drain: Pick<Drain, 'enter' | 'deadline'>;
  readonly observe?: (e: { model: string | null; outcome: Outcome; ttftMs: number | null; totalMs: number; attempts: readonly StoredAttempt[] }) => void;
}

/** How a request ended, after its ledger row and the Redis spend were settled. */
export interface Final {
  readonly model: string | null;
  readonly outcome: Outcome;
  readonly usage: UsageView;
  readonly attempts: readonly AttemptView[];
  readonly ttftMs: number | null;
  readonly totalMs: number;
  /** The answer's finish_reason; null unless it finished (COMPLETED). */
  readonly finishReason: FinishReason | null;
  /** Set when the request failed: the error the client gets (after settlement). */
  readonly error: AppError | null;
}

/** Where a run's output goes, synchronously, one network read at a time: no per-token promise anywhere. */
export interface RunSink {
  /** The events of one upstream read with output: content and tool-call pieces in order (usage and finish to skip). */
  output(model: string, events: readonly UpstreamEvent[]): void;
  /** Collect mode: the attempt so far failed after partial content; its text is void (its tokens are billed). */
  discard(): void;
}

type Terminal = RouteEnd;

/** Why this process ended a run itself, if it did: the drain deadline, or its row reaped elsewhere. */
type EndedBy = 'SHUTDOWN' | 'LEASE_LOST' | null;

/** How long an answer waits for Redis to take its settlement; beyond it the gate applier retries from the ledger. */
const GATE_WAIT_MS = 250;

const ROLE = { SYSTEM: 'system', USER: 'user', ASSISTANT: 'assistant', TOOL: 'tool' } as const;

/**
 * Runs an admitted request through the router and settles it exactly once, whatever happens: completion, upstream
 * failure, client gone (the caller aborts `signal`), or an exception. Output reaches `sink` as it arrives; the
 * ledger row is settled before the returned promise resolves, and the gate (Redis) gets it too, waiting at most
 * GATE_WAIT_MS: what Redis does not take then, the gate applier retries from the ledger. The process ends a run
 * itself at the drain deadline (outcome SHUTDOWN) and when its row was reaped elsewhere (it stops the upstream and
 * amends the row). The caller registers the run with the drain (it leaves once its answer was handed over).
 */
export async function runChat(deps: RunDeps, a: Admitted, input: ChatInput, mode: 'collect' | 'stream', signal: AbortSignal, sink: RunSink): Promise<Final> {
  const started = Date.now();
  const inflight = deps.checkpointer.track(a.requestId);
  const ac = new AbortController();
  let endedBy: EndedBy = null;
  const onAbort = () => ac.abort(signal.reason);
  const onShutdown = () => {
    endedBy ??= 'SHUTDOWN';
    ac.abort(deps.drain.deadline.reason);
  };
  const onLost = () => {
    endedBy ??= 'LEASE_LOST';
    ac.abort(inflight.lost.reason);
  };
  if (signal.aborted) ac.abort(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  if (deps.drain.deadline.aborted) onShutdown();
  else deps.drain.deadline.addEventListener('abort', onShutdown, { once: true });
  inflight.lost.addEventListener('abort', onLost, { once: true });

  let terminal: Terminal | null = null;
  let denied: AppError | null = null;
  let thrown: { readonly error: unknown } | null = null;
  try {
    const messages = upstreamMessages(input);
    const tools = upstreamTools(input);
    const call: CallModel = ({ planned, signal: callSignal }, onRead) =>
      deps.upstream.streamChat(
        {
          model: planned.model.id,
          messages,
          maxTokens: a.maxTokens,
          ...(input.temperature == null ? {} : { temperature: input.temperature }),
          ...(tools === undefined ? {} : { tools }),
          ...withToolChoice(input),
          region: a.plan.region,
          signal: callSignal,
          firstTokenTimeoutMs: planned.firstTokenTimeoutMs,
          idleTimeoutMs: deps.idleTimeoutMs,
        },
        onRead,
      );
    terminal = await routeChat(
      { call, health: deps.health, logger: deps.logger },
      { plan: a.plan, promptEstimate: estimatePromptTokens(messages, tools), signal: ac.signal, mode, totalTimeoutMs: deps.totalTimeoutMs },
      {
        attempt: (model) => {
          inflight.model = model;
          inflight.tokens = 0;
        },
        output: (model, events, chunks) => {
          inflight.tokens += chunks;
          sink.output(model, events);
        },
        discard: async (_model, attempt) => {
          denied = await growHoldForDiscard(deps, a, attempt);
          if (denied) ac.abort(denied);
          inflight.tokens = 0;
          sink.discard();
        },
      },
    );
  } catch (e) {
    thrown = { error: e };
  } finally {
    signal.removeEventListener('abort', onAbort);
    deps.drain.deadline.removeEventListener('abort', onShutdown);
    inflight.lost.removeEventListener('abort', onLost);
    if (!terminal) ac.abort(new Error('run ended early')); // stop the upstream at once
  }
  // Whatever ended the walk (an error included: the edge logs and masks it), the request settles here.
  let final: Final;
  try {
    final = await settle(deps, a, terminal, denied, inflight, started, endedBy);
  } finally {
    deps.checkpointer.release(a.requestId);
  }
  if (thrown) throw thrown.error;
  return final;
}

/**
 * The failed attempt's tokens are billed too: grow the hold by their cost before trying the next model. Returns
 * BUDGET_EXCEEDED when the budget left does not cover it (the fallback stops).
 */
async function growHoldForDiscard(deps: RunDeps, a: Admitted, attempt: AttemptRecord): Promise<AppError | null> {
  const cost = costOf([attempt], a).costMicros;
  // The ledger's hold grows first, so a reseed in between restores the larger (safe) amount.
  await deps.ledger.adjustHold(a.requestId, cost);
  const r = await deps.limiter.extendHold({
    tenantId: a.tenant.id,
    requestId: a.requestId,
    month: a.month,
    extraMicros: cost,
    budgetMicros: a.tenant.monthlyBudgetMicros,
    holdTtlMs: deps.holdTtlMs,
  });
  // The extension joins the request's one hold, released with it at settlement. Only a real budget denial stops
  // the fallback: a month state lost to a Redis flush is rebuilt from the ledger later.
  if (r.allowed || r.reason !== 'BUDGET_EXCEEDED') return null;
  await deps.ledger.adjustHold(a.requestId, -cost);
  return new AppError('BUDGET_EXCEEDED', 'the model failed mid-answer and the budget left does not cover another attempt', {
    remainingUsd: formatUsd(r.remainingMicros ?? 0n),
  });
}

function upstreamMessages(input: ChatInput): ChatMessage[] {
  return input.messages.map((m) => ({
    role: ROLE[m.role],
    content: m.content,
    ...(m.toolCalls?.length ? { toolCalls: m.toolCalls } : {}),
    ...(m.toolCallId ? { toolCallId: m.toolCallId } : {}),
  }));
}

function withToolChoice(input: ChatInput) {
  const choice = upstreamToolChoice(input);
  return choice === undefined ? {} : { toolChoice: choice };
}

function costOf(attempts: readonly AttemptRecord[], a: Admitted) {
  let costMicros = 0n;
  let unpricedPromptTokens = 0;
  for (const at of attempts) {
    if (at.promptTokens === 0 && at.completionTokens === 0) continue;
    const prices = a.prices[at.model];
    if (!prices) throw new Error(`no price snapshot for ${at.model}`);
    const p = priceUsage(prices, {
      promptTokens: at.promptTokens,
      cachedPromptTokens: at.cachedPromptTokens ?? 0,
      cacheWriteTokens: at.cacheWriteTokens ?? 0,
      completionTokens: at.completionTokens,
    });
    costMicros += p.costMicros;
    unpricedPromptTokens += p.unpricedPromptTokens;
  }
  return { costMicros, unpricedPromptTokens };
}

async function settle(
  deps: RunDeps,
  a: Admitted,
  terminal: Terminal | null,
  denied: AppError | null,
  inflight: { tokens: number; model: string | null },
  started: number,
  endedBy: EndedBy,
): Promise<Final> {
  // Without a terminal event the consumer went away mid-stream: bill what was delivered, as the reaper would.
  const attempts: readonly AttemptRecord[] =
    terminal?.attempts ??
    (inflight.model
      ? [{ model: inflight.model, ok: false, error: 'CLIENT_CANCELLED', latencyMs: Date.now() - started, promptTokens: inflight.tokens > 0 ? a.promptEstimate : 0, completionTokens: inflight.tokens, usageSource: 'ESTIMATED' }]
      : []);
  // The router reports our own aborts as the client's; the outcome says who really ended the request.
  const cancelled = terminal?.outcome === 'CLIENT_CANCELLED';
  const outcome: Outcome = denied
    ? 'FAILED'
    : cancelled && endedBy === 'SHUTDOWN'
      ? 'SHUTDOWN'
      : cancelled && endedBy === 'LEASE_LOST'
        ? 'UPSTREAM_INTERRUPTED'
        : (terminal?.outcome ?? 'CLIENT_CANCELLED');
  const model = terminal?.type === 'done' && !denied ? terminal.model : null;
  const { costMicros, unpricedPromptTokens } = costOf(attempts, a);
  let promptTokens = 0;
  let completionTokens = 0;
  let cachedPromptTokens = 0;
  let cacheWriteTokens = 0;
  let source: UsageSource = 'PROVIDER';
  for (const at of attempts) {
    promptTokens += at.promptTokens;
    completionTokens += at.completionTokens;
    cachedPromptTokens += at.cachedPromptTokens ?? 0;
    cacheWriteTokens += at.cacheWriteTokens ?? 0;
    if ((at.promptTokens || at.completionTokens) && at.usageSource === 'ESTIMATED') source = 'ESTIMATED';
  }
  const totalMs = Date.now() - started;
  const ttftMs = terminal?.type === 'done' ? terminal.ttftMs : null;
  const stored: StoredAttempt[] = attempts.map((x) => ({ ...x }));

  const settledHere = await deps.ledger
    .settle(a.requestId, {
      model,
      attempts: stored,
      promptTokens,
      completionTokens,
      cachedPromptTokens,
      cacheWriteTokens,
      unpricedPromptTokens,
      prices: model ? (a.prices[model] ?? null) : null,
      costMicros,
      outcome,
      usageSource: source,
      endedAt: new Date(),
    })
    .catch((e: unknown) => {
      // The row stays HELD with its last checkpoint; the reaper settles it once the lease runs out.
      throw new AppError('SERVICE_UNAVAILABLE', 'the gateway lost its database while finishing this request; it is billed from its last checkpoint, retry it for a whole answer', {}, { cause: e });
    });
  const gateBase = { tenantId: a.tenant.id, requestId: a.requestId, startedAt: a.startedAt };
  if (settledHere) {
    // The answer does not wait for a Redis that refuses or hangs: the ledger row stays pending and is retried.
    await deps.gate.apply({ ...gateBase, version: 1, actualMicros: costMicros, actualTokens: promptTokens + completionTokens, tokensEstimate: a.tokensEstimate }, GATE_WAIT_MS);
  } else {
    // Reaped while it still ran (this process lost Postgres past its lease): what it consumed beyond the reaper's
    // settlement amends the same row, and the gate gets that difference once, under its own marker id.
    const amended = await deps.gateLedger.amend(a.requestId, { costMicros, tokens: promptTokens + completionTokens, completionTokens });
    deps.logger.warn(
      { requestId: a.requestId, amendedMicros: amended?.amendedMicros.toString() ?? '0', amendedTokens: amended?.amendedTokens ?? 0 },
      'ledger row was already settled (reaped after a lost lease); late usage amended',
    );
    if (amended) {
      await deps.gate.apply({ ...gateBase, version: 2, actualMicros: amended.amendedMicros, actualTokens: amended.amendedTokens, tokensEstimate: 0 }, GATE_WAIT_MS);
    }
    // Reaped before this request's admission reached Redis: the reaper found no hold to release, so its hold is left.
    await deps.gateRepair
      .releaseLeftoverHold({ tenantId: a.tenant.id, month: a.month, requestId: a.requestId })
      .catch((e) => deps.logger.warn({ err: e, requestId: a.requestId }, 'could not release a reaped request\'s hold; it expires by itself'));
  }
  deps.observe?.({ model, outcome, ttftMs, totalMs, attempts: stored });
  const error = denied ?? (model ? null : endedHere(endedBy)) ?? (terminal?.type === 'failed' ? terminal.error : null);
  return {
    model,
    outcome,
    usage: { promptTokens, completionTokens, cachedPromptTokens, cacheWriteTokens, costUsd: costMicros, source },
    attempts: attempts.map(({ model: m, ok, error: err, latencyMs }) => ({ model: m, ok, error: err, latencyMs })),
    ttftMs,
    totalMs,
    finishReason: terminal?.type === 'done' && !denied ? terminal.finishReason : null,
    error,
  };
}

/** The error of a request this process ended before it delivered anything: the client should retry elsewhere. */
function endedHere(endedBy: EndedBy): AppError | null {
  switch (endedBy) {
    case 'SHUTDOWN':
      return new AppError('SERVICE_UNAVAILABLE', 'this gateway instance is shutting down and ended the request before any answer; nothing was charged, retry it');
    case 'LEASE_LOST':
      return new AppError('SERVICE_UNAVAILABLE', 'this gateway instance lost its database and ended the request before any answer; retry it');
    case null:
      return null;
  }
}
