import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { isAppError } from '../errors';
import type { ChatService } from '../chat/chat-service';
import type { ChatInput } from '../chat/chat-input';
import type { ChatResult, ChatStreamEvent } from '../chat/types';
import type { Principal } from '../tenants/principal';
import { GATEWAY, GEN_AI, ERROR_TYPE, PROVIDER } from './gen-ai';
import type { Tracing } from './tracing';

/**
 * A span per chat request around the use case (mutation and subscription alike), as a decorator: the chat
 * story's steps stay free of tracing code. The span is the parent of every upstream attempt's span (trace-upstream.ts)
 * and the child of the client's traceparent, when it sent one. It records models, token usage, cost, profile,
 * outcome and the fallback chain as walked; never the messages or the answer.
 */
export function traceChat(inner: ChatService, tracing: Tracing): ChatService {
  const start = (principal: Principal, input: ChatInput, mode: 'collect' | 'stream'): Span =>
    tracing.startSpan(`chat ${input.profile}`, {
      kind: SpanKind.SERVER,
      attributes: {
        [GEN_AI.operation]: 'chat',
        [GEN_AI.system]: PROVIDER,
        [GEN_AI.provider]: PROVIDER,
        [GATEWAY.profile]: input.profile,
        [GATEWAY.mode]: mode,
        ...(input.maxTokens ? { [GEN_AI.requestMaxTokens]: input.maxTokens } : {}),
        ...(input.region ? { [GATEWAY.region]: input.region } : {}),
        ...(principal.kind === 'tenant' ? { [GATEWAY.tenantId]: principal.tenantId } : {}),
      },
    });

  return {
    async complete(principal, input, signal, hooks) {
      const span = start(principal, input, 'collect');
      try {
        const result = await tracing.withContext(tracing.setSpan(span), () => inner.complete(principal, input, signal, hooks));
        recordResult(span, result);
        return result;
      } catch (e) {
        recordError(span, e);
        throw e;
      } finally {
        span.end();
      }
    },

    async *stream(principal, input, signal, hooks) {
      const span = start(principal, input, 'stream');
      const ctx = tracing.setSpan(span);
      const it = inner.stream(principal, input, signal, hooks);
      try {
        for (;;) {
          // Each step runs in the request's context, whoever pulls the stream (graphql-ws runs it in its own).
          const step = await tracing.withContext(ctx, () => it.next());
          if (step.done) break;
          if (step.value.done) recordResult(span, step.value);
          else span.setAttribute(GATEWAY.requestId, step.value.requestId);
          yield step.value;
        }
      } catch (e) {
        recordError(span, e);
        throw e;
      } finally {
        // The consumer left early (client gone): let the use case settle before the span ends.
        await tracing.withContext(ctx, () => it.return(undefined)).catch(() => undefined);
        span.end();
      }
    },
  };
}

function recordResult(span: Span, r: ChatResult | ChatStreamEvent): void {
  const chain = (r.attempts ?? []).map((a) => a.model);
  span.setAttributes({
    [GATEWAY.requestId]: r.requestId,
    [GEN_AI.responseModel]: r.model,
    [GATEWAY.fallbackChain]: chain,
    [GATEWAY.attempts]: chain.length,
    ...(chain[0] ? { [GEN_AI.requestModel]: chain[0] } : {}),
    ...(r.outcome ? { [GATEWAY.outcome]: r.outcome } : {}),
    ...(r.ttftMs !== null ? { [GATEWAY.ttftMs]: r.ttftMs } : {}),
    ...(r.usage
      ? {
          [GEN_AI.inputTokens]: r.usage.promptTokens,
          [GEN_AI.outputTokens]: r.usage.completionTokens,
          [GATEWAY.costMicros]: Number(r.usage.costMicros),
        }
      : {}),
  });
}

function recordError(span: Span, e: unknown): void {
  const code = isAppError(e) ? e.code : 'INTERNAL_SERVER_ERROR';
  span.setAttribute(ERROR_TYPE, code);
  span.setAttribute(GATEWAY.outcome, 'FAILED');
  const attempts = isAppError(e) ? (e.extensions as { attempts?: ReadonlyArray<{ model: string }> } | undefined)?.attempts : undefined;
  if (attempts?.length) span.setAttributes({ [GATEWAY.fallbackChain]: attempts.map((a) => a.model), [GATEWAY.attempts]: attempts.length });
  // The code only: an error message can quote what the client sent.
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}
