import { AppError, UnreachableCaseError } from '../../errors';
import type { Logger } from '../../infra/logger';
import type { AttemptRecord } from '../../routing';
import type { FinishReason } from '../../upstream';
import type { Checkpointer } from '../../accounting/checkpointer';
import type { GateApplier } from '../../accounting/gate-applier';
import type { GateLedger } from '../../accounting/gate-ledger';
import type { Ledger, Outcome, StoredAttempt } from '../../accounting/ledger';
import type { UsageSource } from '../../routing';
import type { GateRepair } from '../../limits/repair';
import type { AttemptView, UsageView } from '../types';
import type { Admitted } from './admit';
import { costOfAttempts } from './cost';
import type { EndedBy, RunEnd } from './run';

export interface SettleDeps {
  readonly ledger: Pick<Ledger, 'settle'>;
  readonly checkpointer: Pick<Checkpointer, 'release'>;
  /** Where a settlement goes to the gate (Redis) after the ledger; retried from the ledger when Redis refuses. */
  readonly gate: Pick<GateApplier, 'apply'>;
  readonly gateLedger: Pick<GateLedger, 'amend'>;
  readonly gateRepair: Pick<GateRepair, 'releaseLeftoverHold'>;
  readonly logger: Logger;
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

/** How long an answer waits for Redis to take its settlement; beyond it the gate applier retries from the ledger. */
const GATE_WAIT_MS = 250;

/**
 * Step 4 of a chat request, exactly once whatever ended the run: the cost from the price snapshot, the ledger row
 * SETTLED in Postgres first (the truth), then the gate in Redis, waiting at most GATE_WAIT_MS (what Redis does not
 * take then, the gate applier retries from the ledger). A row the reaper settled meanwhile is amended instead.
 * The checkpointer renews the row's lease until this ends.
 */
export async function settle(deps: SettleDeps, a: Admitted, end: RunEnd): Promise<Final> {
  try {
    return await settleRow(deps, a, end);
  } finally {
    deps.checkpointer.release(a.requestId);
  }
}

async function settleRow(deps: SettleDeps, a: Admitted, end: RunEnd): Promise<Final> {
  const { terminal, denied, endedBy } = end;
  const attempts = attemptsOf(a, end);
  const outcome = outcomeOf(end);
  const model = terminal?.type === 'done' && !denied ? terminal.model : null;
  const { costMicros, unpricedPromptTokens } = costOfAttempts(attempts, a.prices);
  const usage = usageOf(attempts, costMicros);
  const totalMs = Date.now() - end.startedMs;
  const ttftMs = terminal?.type === 'done' ? terminal.ttftMs : null;
  const stored: StoredAttempt[] = attempts.map((x) => ({ ...x }));

  const settledHere = await deps.ledger
    .settle(a.requestId, {
      startedAt: a.startedAt,
      model,
      attempts: stored,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedPromptTokens: usage.cachedPromptTokens,
      cacheWriteTokens: usage.cacheWriteTokens,
      unpricedPromptTokens,
      prices: model ? (a.prices[model] ?? null) : null,
      costMicros,
      outcome,
      usageSource: usage.source,
      endedAt: new Date(),
    })
    .catch((e: unknown) => {
      // The row stays HELD with its last checkpoint; the reaper settles it once the lease runs out.
      throw new AppError(
        'SERVICE_UNAVAILABLE',
        'the gateway lost its database while finishing this request; it is billed from its last checkpoint, retry it for a whole answer',
        {},
        { cause: e },
      );
    });
  const tokens = usage.promptTokens + usage.completionTokens;
  if (settledHere) {
    // The answer does not wait for a Redis that refuses or hangs: the ledger row stays pending and is retried.
    await deps.gate.apply(
      {
        tenantId: a.tenant.id,
        requestId: a.requestId,
        apiKeyId: a.keyId,
        startedAt: a.startedAt,
        version: 1,
        actualMicros: costMicros,
        actualTokens: tokens,
        tokensEstimate: a.tokensEstimate,
      },
      GATE_WAIT_MS,
    );
  } else {
    await amendReaped(deps, a, { costMicros, tokens, completionTokens: usage.completionTokens });
  }
  deps.observe?.({ model, outcome, ttftMs, totalMs, attempts: stored });
  return {
    model,
    outcome,
    usage,
    attempts: attempts.map(({ model: m, ok, error: err, latencyMs }) => ({ model: m, ok, error: err, latencyMs })),
    ttftMs,
    totalMs,
    finishReason: terminal?.type === 'done' && !denied ? terminal.finishReason : null,
    error: denied ?? (model ? null : endedHere(endedBy)) ?? (terminal?.type === 'failed' ? terminal.error : null),
  };
}

/** Without a terminal event the consumer went away mid-stream: bill what was delivered, as the reaper would. */
function attemptsOf(a: Admitted, { terminal, inflight, startedMs }: RunEnd): readonly AttemptRecord[] {
  if (terminal) return terminal.attempts;
  if (!inflight.model) return [];
  const promptTokens = inflight.tokens > 0 ? a.promptEstimate : 0;
  return [
    {
      model: inflight.model,
      ok: false,
      error: 'CLIENT_CANCELLED',
      latencyMs: Date.now() - startedMs,
      promptTokens,
      completionTokens: inflight.tokens,
      usageSource: 'ESTIMATED',
    },
  ];
}

/** The router reports our own aborts as the client's; the outcome says who really ended the request. */
function outcomeOf({ terminal, denied, endedBy }: RunEnd): Outcome {
  if (denied) return 'FAILED';
  if (terminal?.outcome === 'CLIENT_CANCELLED' && endedBy === 'SHUTDOWN') return 'SHUTDOWN';
  if (terminal?.outcome === 'CLIENT_CANCELLED' && endedBy === 'LEASE_LOST') return 'UPSTREAM_INTERRUPTED';
  if (terminal?.outcome === 'CLIENT_CANCELLED' && endedBy === 'SUSPENDED') return 'SUSPENDED';
  return terminal?.outcome ?? 'CLIENT_CANCELLED';
}

function usageOf(attempts: readonly AttemptRecord[], costMicros: bigint): UsageView {
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
  return { promptTokens, completionTokens, cachedPromptTokens, cacheWriteTokens, costMicros, source };
}

/**
 * Reaped while it still ran (this process lost Postgres past its lease): what it consumed beyond the reaper's
 * settlement amends the same row, and the gate gets that difference once, under its own marker id.
 */
async function amendReaped(deps: SettleDeps, a: Admitted, used: { costMicros: bigint; tokens: number; completionTokens: number }): Promise<void> {
  const amended = await deps.gateLedger.amend(a.requestId, used);
  deps.logger.warn(
    { requestId: a.requestId, amendedMicros: amended?.amendedMicros.toString() ?? '0', amendedTokens: amended?.amendedTokens ?? 0 },
    'ledger row was already settled (reaped after a lost lease); late usage amended',
  );
  if (amended) {
    await deps.gate.apply(
      {
        tenantId: a.tenant.id,
        requestId: a.requestId,
        apiKeyId: a.keyId,
        startedAt: a.startedAt,
        version: 2,
        actualMicros: amended.amendedMicros,
        actualTokens: amended.amendedTokens,
        tokensEstimate: 0,
      },
      GATE_WAIT_MS,
    );
  }
  // Reaped before this request's admission reached Redis: the reaper found no hold to release, so its hold is left.
  await deps.gateRepair
    .releaseLeftoverHold({ tenantId: a.tenant.id, month: a.month, requestId: a.requestId })
    .catch((e) => deps.logger.warn({ err: e, requestId: a.requestId }, "could not release a reaped request's hold; it expires by itself"));
}

/** The error of a request this process ended before it delivered anything: the client should retry elsewhere. */
function endedHere(endedBy: EndedBy): AppError | null {
  switch (endedBy) {
    case 'SHUTDOWN':
      return new AppError(
        'SERVICE_UNAVAILABLE',
        'this gateway instance is shutting down and ended the request before any answer; nothing was charged, retry it',
      );
    case 'LEASE_LOST':
      return new AppError('SERVICE_UNAVAILABLE', 'this gateway instance lost its database and ended the request before any answer; retry it');
    case 'SUSPENDED':
      return new AppError('FORBIDDEN', 'this tenant was suspended while the request waited for its first token; its keys work again once an admin resumes it', {
        reason: 'SUSPENDED',
      });
    case null:
      return null;
    default:
      throw new UnreachableCaseError(endedBy);
  }
}
