import { formatUsd } from '../accounting/money';
import type { Outcome } from '../accounting/ledger';
import type { ChatResult, UsageView } from '../chat/types';

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
    cost_usd: formatUsd(u.costUsd),
    // A single request's cost is far below 2^53 micro-dollars ($9 billion), so the number is exact.
    cost_micros: Number(u.costUsd),
  };
}

/** The ledger's requestId is the completion's id too, so a client's id finds the ledger row. */
export const completionId = (requestId: string): string => `chatcmpl-${requestId}`;

/**
 * 'length' when the answer was cut short: any outcome but COMPLETED (partial, billed), or a completion that used the
 * whole max_tokens the client asked for. The upstream's own finish_reason does not reach the use case, so a
 * completion cut by the profile's default limit (max_tokens left out) reads 'stop'.
 */
export function finishReason(o: Outcome, completionTokens: number, maxTokens: number | null): 'stop' | 'length' {
  return o !== 'COMPLETED' || (maxTokens !== null && completionTokens >= maxTokens) ? 'length' : 'stop';
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The non-streamed answer. `outcome` is an extra field: how the gateway's request ended. */
export function completionBody(r: ChatResult, maxTokens: number | null) {
  return {
    id: completionId(r.requestId),
    object: 'chat.completion' as const,
    created: nowSeconds(),
    model: r.model,
    choices: [{ index: 0, message: { role: 'assistant' as const, content: r.content, refusal: null }, logprobs: null, finish_reason: finishReason(r.outcome, r.usage.completionTokens, maxTokens) }],
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
  return {
    content(model: string, text: string) {
      // The first chunk names the role, as OpenAI's streams do.
      const delta = first ? { role: 'assistant' as const, content: text } : { content: text };
      first = false;
      return { ...base(model), choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] };
    },
    finish(model: string, outcome: Outcome, completionTokens: number) {
      return { ...base(model), choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(outcome, completionTokens, maxTokens) }] };
    },
    /** stream_options.include_usage: one more chunk with no choices and the whole request's usage. */
    usage(model: string, u: UsageView) {
      return { ...base(model), choices: [], usage: toUsage(u) };
    },
  };
}
