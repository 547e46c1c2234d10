import type { ModelRow } from '../catalog/model-table';

/** The wire shapes of the OpenAI chat API that the simulator speaks. */

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  /** Only when the cached fault asked for it. */
  readonly prompt_tokens_details?: { readonly cached_tokens: number; readonly cache_write_tokens: number };
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** The usage with prompt-cache details; both counts are part of prompt_tokens, so each is capped at what is left. */
export function withCache(usage: Usage, cachedTokens: number, cacheWriteTokens: number): Usage {
  const cached = Math.min(cachedTokens, usage.prompt_tokens);
  const written = Math.min(cacheWriteTokens, usage.prompt_tokens - cached);
  return { ...usage, prompt_tokens_details: { cached_tokens: cached, cache_write_tokens: written } };
}

/** One function call of an answer, whole. */
export interface WireToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** A non-streamed chat.completion whose message calls tools (content null; finish_reason tool_calls, or length). */
export function toolCallsJson(who: CompletionIdentity, calls: readonly WireToolCall[], finishReason: string, usage: Usage | undefined): string {
  return JSON.stringify({
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
        },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    ...(usage === undefined ? {} : { usage }),
  });
}

export interface OpenAiErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export function errorBody(message: string, type: string, code: string | null, param: string | null = null): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

/** GET /v1/models in OpenAI list format. `created` is fixed so the answer is byte-identical every time. */
export function modelList(models: readonly ModelRow[]): unknown {
  return {
    object: 'list',
    data: models.map((m) => ({ id: m.id, object: 'model', created: 1_747_699_200, owned_by: m.provider })),
  };
}

export interface CompletionIdentity {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

/** A non-streamed chat.completion; usage left out when `usage` is undefined (the no_usage fault). */
export function completionJson(who: CompletionIdentity, content: string, finishReason: string, usage: Usage | undefined): string {
  return JSON.stringify({
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finishReason }],
    ...(usage === undefined ? {} : { usage }),
  });
}

/**
 * SSE frames of a chat.completion.chunk stream. The constant part of every chunk is serialised once per response
 * and only the token is escaped per chunk, which keeps a 150-token stream cheap at SIM_LATENCY_SCALE=0.
 */
export interface StreamFramer {
  /** The chunk carrying token i; the first one also carries role "assistant", as OpenAI's does. */
  token(i: number, text: string): string;
  final(finishReason: string): string;
  usage(usage: Usage): string;
  /** A chunk carrying tool-call pieces (`first`: the answer's first chunk, which carries the role). */
  toolCalls(first: boolean, pieces: readonly Record<string, unknown>[]): string;
}

export const DONE_FRAME = 'data: [DONE]\n\n';

export function streamFramer(who: CompletionIdentity): StreamFramer {
  const head = `data: {"id":${JSON.stringify(who.id)},"object":"chat.completion.chunk","created":${who.created},"model":${JSON.stringify(who.model)},`;
  return {
    token: (i, text) =>
      `${head}"choices":[{"index":0,"delta":{${i === 0 ? '"role":"assistant",' : ''}"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]}\n\n`,
    final: (finishReason) => `${head}"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":${JSON.stringify(finishReason)}}]}\n\n`,
    usage: (usage) => `${head}"choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
    toolCalls: (first, pieces) =>
      `${head}"choices":[{"index":0,"delta":{${first ? '"role":"assistant","content":null,' : ''}"tool_calls":${JSON.stringify(pieces)}},"logprobs":null,"finish_reason":null}]}\n\n`,
  };
}

/** What the garbage fault streams: SSE data lines whose payload is not JSON. */
export const GARBAGE_SSE = 'data: {"id":"chatcmpl-garbage","choices":[{"delta":{"content":" lor\n\ndata: <html><body>502 Bad Gateway</body></html>\n\n';
/** What the garbage fault answers to a non-streamed request: a 200 whose body is not JSON. */
export const GARBAGE_JSON = '{"id":"chatcmpl-garbage","object":"chat.completion","choices":[{"message":<html><body>502 Bad Gateway</body></html>';
