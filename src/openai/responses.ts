import { formatUsd } from '../accounting/money';
import type { Outcome } from '../accounting/ledger';
import type { ChatResult, UsageView } from '../chat/types';
import type { FinishReason, ToolCall, ToolCallDelta } from '../upstream/types';

/** OpenAI's usage object plus the exact cost, as the GraphQL API gives it: a Usd string and integer micro-dollars. */
export interface OpenAIUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  /** OpenAI's own field: how many of the prompt tokens were read from (and, as an extra, written to) the cache. */
  readonly prompt_tokens_details: { readonly cached_tokens: number; readonly cache_write_tokens: number };
  readonly cost_usd: string;
  readonly cost_micros: number;
}

export function toUsage(u: UsageView): OpenAIUsage {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedPromptTokens, cache_write_tokens: u.cacheWriteTokens },
    cost_usd: formatUsd(u.costMicros),
    // A single request's cost is far below 2^53 micro-dollars ($9 billion), so the number is exact.
    cost_micros: Number(u.costMicros),
  };
}

/** The ledger's requestId is the completion's id too, so a client's id finds the ledger row. */
const completionId = (requestId: string): string => `chatcmpl-${requestId}`;

type OpenAIFinish = 'stop' | 'length' | 'tool_calls' | 'content_filter';
const FINISH: Record<FinishReason, OpenAIFinish> = { STOP: 'stop', LENGTH: 'length', TOOL_CALLS: 'tool_calls', CONTENT_FILTER: 'content_filter' };

/**
 * 'length' when the answer was cut short (any outcome but COMPLETED: partial, billed); otherwise the upstream's own
 * reason when it gave one, else 'length' for a completion that used the whole max_tokens asked for, else 'stop'.
 */
export function finishReason(o: Outcome, completionTokens: number, maxTokens: number | null, upstream: FinishReason | null = null): OpenAIFinish {
  if (o !== 'COMPLETED') return 'length';
  if (upstream) return FINISH[upstream];
  return maxTokens !== null && completionTokens >= maxTokens ? 'length' : 'stop';
}

/** OpenAI's shape of a whole tool call. */
const toolCallOf = (c: ToolCall) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } });

/** OpenAI's shape of a piece of a streamed tool call: id, type and name come in a call's first piece only. */
const toolCallDeltaOf = (d: ToolCallDelta) => ({
  index: d.index,
  ...(d.id !== undefined ? { id: d.id, type: 'function' as const } : {}),
  function: { ...(d.name !== undefined ? { name: d.name } : {}), ...(d.argumentsDelta !== undefined ? { arguments: d.argumentsDelta } : {}) },
});

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The non-streamed answer. `outcome` is an extra field: how the gateway's request ended. */
export function completionBody(r: ChatResult, maxTokens: number | null) {
  return {
    id: completionId(r.requestId),
    object: 'chat.completion' as const,
    created: nowSeconds(),
    model: r.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant' as const,
          // A reply that only calls tools has no text, which OpenAI sends as null.
          content: r.content === '' && r.toolCalls.length > 0 ? null : r.content,
          refusal: null,
          ...(r.toolCalls.length > 0 ? { tool_calls: r.toolCalls.map(toolCallOf) } : {}),
        },
        logprobs: null,
        finish_reason: finishReason(r.outcome, r.usage.completionTokens, maxTokens, r.finishReason),
      },
    ],
    usage: toUsage(r.usage),
    system_fingerprint: null,
    outcome: r.outcome,
  };
}

/** Builds the chunks of one stream; they share id and created, as OpenAI's do. */
export function chunkMaker(requestId: string, maxTokens: number | null) {
  const id = completionId(requestId);
  const created = nowSeconds();
  let first = true;
  const base = (model: string) => ({ id, object: 'chat.completion.chunk' as const, created, model, system_fingerprint: null });
  const piece = (model: string, delta: Record<string, unknown>) => {
    // The first chunk names the role, as OpenAI's streams do.
    const d = first ? { role: 'assistant' as const, ...delta } : delta;
    first = false;
    return { ...base(model), choices: [{ index: 0, delta: d, logprobs: null, finish_reason: null }] };
  };
  return {
    content(model: string, text: string) {
      return piece(model, { content: text });
    },
    toolCalls(model: string, deltas: readonly ToolCallDelta[]) {
      return piece(model, { tool_calls: deltas.map(toolCallDeltaOf) });
    },
    finish(model: string, outcome: Outcome, completionTokens: number, upstream: FinishReason | null) {
      return {
        ...base(model),
        choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(outcome, completionTokens, maxTokens, upstream) }],
      };
    },
    /** stream_options.include_usage: one more chunk with no choices and the whole request's usage. */
    usage(model: string, u: UsageView) {
      return { ...base(model), choices: [], usage: toUsage(u) };
    },
  };
}
