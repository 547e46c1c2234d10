import { UnreachableCaseError } from '../errors';
import type { ChatInput } from './chat-input';
import type { Principal } from '../tenants/principal';
import type { Idempotency } from './idempotency';
import { chatStory, type ChatDeps, type ChatHooks } from './chat-story';
import { collect, toResult } from './collect';
import { completeOnce } from './idempotent';
import type { ChatResult, ChatStreamEvent } from './types';

export type { ChatHooks } from './chat-story';

export interface ChatService {
  /**
   * The chat mutation, settled before it returns. Idempotent with input.idempotencyKey. Returns (never throws) an
   * answer that delivered content, whatever its outcome: COMPLETED, or TIMEOUT / CLIENT_CANCELLED / SHUTDOWN /
   * SUSPENDED with the partial content that was charged. Throws when no content came (UPSTREAM_UNAVAILABLE with the attempts,
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

export type ChatServiceDeps = ChatDeps & { readonly idempotency: Idempotency };

/** The chat use case (chat-story.ts) for its two consumers: the collected mutation and the stream. */
export function makeChatService(deps: ChatServiceDeps): ChatService {
  return {
    async complete(principal, input, signal, hooks) {
      const key = input.idempotencyKey ?? null;
      if (key === null) {
        const c = await collect(chatStory(deps, principal, input, 'collect', signal, hooks));
        if (c.kind === 'answered') return c.answer; // never: without a guard nothing answers instead of the run
        return toResult(c.requestId, c.final, c.content);
      }
      return completeOnce(deps, key, input, signal, (guard) => collect(chatStory(deps, principal, input, 'collect', signal, hooks, guard)));
    },

    async *stream(principal, input, signal, hooks) {
      let requestId = '';
      let model = '';
      for await (const ev of chatStory(deps, principal, input, 'stream', signal, hooks)) {
        const none = {
          requestId,
          model,
          delta: null,
          done: false,
          outcome: null,
          usage: null,
          ttftMs: null,
          attempts: null,
          toolCallDeltas: null,
          finishReason: null,
        } as const;
        switch (ev.type) {
          case 'admitted':
            requestId = ev.request.requestId;
            model = ev.request.plan.chain[0]!.model.id;
            break;
          case 'delta':
            model = ev.model;
            yield { ...none, model, delta: ev.text };
            break;
          case 'tool_calls':
            model = ev.model;
            yield { ...none, model, toolCallDeltas: ev.deltas };
            break;
          case 'discard':
            break;
          case 'final': {
            const f = ev.final;
            if (f.error && (f.outcome === 'FAILED' || !f.model)) throw f.error;
            if (f.outcome === 'CLIENT_CANCELLED' && !f.model) return;
            yield {
              ...none,
              model: f.model ?? model,
              done: true,
              outcome: f.outcome,
              usage: f.usage,
              ttftMs: f.ttftMs,
              attempts: f.attempts,
              finishReason: f.finishReason,
            };
            break;
          }
          case 'answered':
            return ev.answer; // never: the stream has no guard
          default:
            throw new UnreachableCaseError(ev);
        }
      }
    },
  };
}
