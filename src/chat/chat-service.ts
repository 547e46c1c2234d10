import { AppError, rethrowUnavailable } from '../errors';
import type { Principal } from '../tenants/principal';
import { admit, reserveAdmission, validate, withdraw, writeAhead, type Admitted, type AdmissionDeps, type Windows } from './admission';
import { runChat, type Final, type RunDeps } from './run-chat';
import { StreamQueue } from './stream-queue';
import { hashInput, type Idempotency, type StoredOutcome } from './idempotency';
import type { ChatInput } from './chat-input';
import { ToolCallAssembler } from './tool-call-assembler';
import type { ChatResult, ChatStreamEvent } from './types';

/** Optional observers of one request, for edges that must name it before it ends (e.g. an x-request-id header). */
export interface ChatHooks {
  /** Called once the request is admitted, with the requestId of its ledger row and the tenant's windows after it. */
  readonly onAdmitted?: (requestId: string, windows: Windows) => void;
}

export interface ChatService {
  /**
   * The chat mutation, settled before it returns. Idempotent with input.idempotencyKey. Returns (never throws) an
   * answer that delivered content, whatever its outcome: COMPLETED, or TIMEOUT / CLIENT_CANCELLED / SHUTDOWN with
   * the partial content that was charged. Throws when no content came (UPSTREAM_UNAVAILABLE with the attempts,
   * gate refusals, bad input) or a fallback was refused mid-answer (BUDGET_EXCEEDED). A replay returns or throws
   * what the first request did, its outcome included; a first request ended by SHUTDOWN releases its key instead.
   */
  complete(principal: Principal, input: ChatInput, signal: AbortSignal, hooks?: ChatHooks): Promise<ChatResult>;
  /**
   * chatStream: content events, then one done event for every stream that delivered content. Throws
   * UPSTREAM_UNAVAILABLE when the chain failed before any content. Abort `signal` when the client goes away.
   */
  stream(principal: Principal, input: ChatInput, signal: AbortSignal, hooks?: ChatHooks): AsyncGenerator<ChatStreamEvent>;
}

export type ChatServiceDeps = AdmissionDeps & RunDeps & { readonly idempotency: Idempotency };

const toStoredResult = (r: ChatResult): StoredOutcome => ({
  kind: 'result',
  value: { ...r, usage: { ...r.usage, costUsd: r.usage.costUsd.toString() } },
});

function fromStored(o: StoredOutcome): ChatResult {
  if (o.kind === 'error') throw new AppError(o.code, o.message, o.extensions);
  const v = o.value as ChatResult & { usage: { costUsd: string } };
  // Results stored before tool calls and cache counts existed replay as a text answer with no cache.
  return {
    ...v,
    toolCalls: v.toolCalls ?? [],
    finishReason: v.finishReason ?? null,
    usage: { ...v.usage, cachedPromptTokens: v.usage.cachedPromptTokens ?? 0, cacheWriteTokens: v.usage.cacheWriteTokens ?? 0, costUsd: BigInt(v.usage.costUsd) },
  };
}

export function makeChatService(deps: ChatServiceDeps): ChatService {
  async function collect(input: ChatInput, signal: AbortSignal, a: Admitted, hooks?: ChatHooks) {
    hooks?.onAdmitted?.(a.requestId, a.windows);
    let parts: string[] = [];
    const calls = new ToolCallAssembler();
    const leave = deps.drain.enter();
    try {
      const final = await runChat(deps, a, input, 'collect', signal, {
        output: (_model, events) => {
          for (const ev of events) {
            if (ev.type === 'delta') parts.push(ev.text);
            else if (ev.type === 'tool_calls') calls.add(ev.deltas);
          }
        },
        discard: () => {
          parts = [];
          calls.reset();
        },
      });
      return { a, final, content: { text: parts.join(''), toolCalls: calls.calls() } };
    } finally {
      leave();
    }
  }

  return {
    async complete(principal, input, signal, hooks) {
      const v = await validate(deps, principal, input, 'collect');
      const key = input.idempotencyKey ?? null;
      if (key === null) {
        const { a, final, content } = await collect(input, signal, await admit(deps, v, input), hooks);
        if (final.error) throw final.error;
        return toResult(a.requestId, final, content);
      }
      const { idempotencyKey: _omit, ...rest } = input;
      const inputHash = hashInput(rest);
      // A finished first request is replayed without admission; otherwise reserve before claiming the key, so a
      // refused retry costs this one read and Redis, nothing more (the row is written once the key is ours).
      const done = await deps.idempotency.peek(v.tenant.id, key, inputHash).catch(rethrowUnavailable('Postgres'));
      if (done) return fromStored(done);
      const reserved = await reserveAdmission(deps, v, input);
      const claim = await deps.idempotency.claim(v.tenant.id, key, inputHash, signal).catch(async (e) => {
        await withdraw(deps, reserved);
        throw e;
      });
      if (claim.kind === 'replay') {
        await withdraw(deps, reserved);
        return fromStored(claim.outcome);
      }
      let outcome: StoredOutcome | null = null;
      try {
        const { a, final, content } = await collect(input, signal, await writeAhead(deps, reserved), hooks);
        // Ended by the server's shutdown: the key is released (below) so the retry runs afresh elsewhere; each is
        // charged for what it consumed.
        const keep = final.outcome !== 'SHUTDOWN';
        if (final.error) {
          if (keep && final.usage.costUsd > 0n) {
            outcome = { kind: 'error', code: final.error.code, message: final.error.message, extensions: { ...final.error.extensions } };
          }
          throw final.error;
        }
        const result = toResult(a.requestId, final, content);
        if (keep) outcome = toStoredResult(result);
        return result;
      } finally {
        // Failed with nothing charged (denied, unavailable, bad input), or ended by a shutdown: release the key so
        // a retry runs afresh.
        await (outcome ? deps.idempotency.finish(v.tenant.id, key, outcome) : deps.idempotency.release(v.tenant.id, key)).catch((e) =>
          deps.logger.error({ err: e }, 'idempotency key update failed'),
        );
      }
    },

    async *stream(principal, input, signal, hooks) {
      const v = await validate(deps, principal, input, 'stream');
      const a = await admit(deps, v, input);
      hooks?.onAdmitted?.(a.requestId, a.windows);
      // Left only after the consumer took the done event (or went away): the drain then closes clients.
      const leave = deps.drain.enter();
      const ac = new AbortController();
      const onAbort = () => ac.abort(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      const queue = new StreamQueue(input.flushMs ?? 0);
      const run = runChat(deps, a, input, 'stream', ac.signal, queue).then(
        (f) => queue.end(f),
        (e: unknown) => queue.fail(e),
      );
      const event = (model: string, delta: string | null, toolCallDeltas: ChatStreamEvent['toolCallDeltas']): ChatStreamEvent => ({
        requestId: a.requestId, model, delta, done: false, outcome: null, usage: null, ttftMs: null, attempts: null, toolCallDeltas, finishReason: null,
      });
      let model = a.plan.chain[0]!.model.id;
      try {
        for (;;) {
          const item = await queue.next();
          switch (item.kind) {
            case 'text':
              model = item.model;
              yield event(model, item.text, null);
              break;
            case 'tools':
              model = item.model;
              yield event(model, null, item.deltas);
              break;
            case 'error':
              throw item.error;
            case 'end': {
              const f = item.final;
              if (f.error && (f.outcome === 'FAILED' || !f.model)) throw f.error;
              if (f.outcome === 'CLIENT_CANCELLED' && !f.model) return;
              yield { ...event(f.model ?? model, null, null), done: true, outcome: f.outcome, usage: f.usage, ttftMs: f.ttftMs, attempts: f.attempts, finishReason: f.finishReason };
              return;
            }
          }
        }
      } finally {
        // The consumer went away mid-stream: stop the upstream; the run settles before the stream ends.
        ac.abort(new Error('stream ended by its consumer'));
        signal.removeEventListener('abort', onAbort);
        await run;
        leave();
      }
    },
  };
}

function toResult(requestId: string, f: Final, answer: { text: string; toolCalls: ChatResult['toolCalls'] }): ChatResult {
  if (!f.model) throw new AppError('UPSTREAM_UNAVAILABLE', 'no model answered', { attempts: f.attempts });
  return {
    requestId,
    model: f.model,
    content: answer.text,
    outcome: f.outcome,
    usage: f.usage,
    ttftMs: f.ttftMs,
    totalMs: f.totalMs,
    attempts: f.attempts,
    toolCalls: answer.toolCalls,
    finishReason: f.finishReason,
  };
}

