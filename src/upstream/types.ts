import type { Region } from '../catalog/types';
import type { UpstreamFailure } from './errors';

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** A function call the model made, as a later request sends it back (OpenAI's assistant `tool_calls`). */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** JSON text, as the model produced it. */
  readonly arguments: string;
}

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
  /** Assistant messages only: the calls the model made in that turn. */
  readonly toolCalls?: readonly ToolCall[];
  /** Tool messages only: the call this message answers. */
  readonly toolCallId?: string;
}

/** A function the model may call; `parameters` is a JSON Schema object (already parsed). */
export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** OpenAI's tool_choice: a mode, or one named function the model must call. */
export type ToolChoice = 'auto' | 'none' | 'required' | { readonly name: string };

/** Why the model stopped, in OpenAI's words mapped to the contract's enum. */
export type FinishReason = 'STOP' | 'LENGTH' | 'TOOL_CALLS' | 'CONTENT_FILTER';

/**
 * One streamed chat completion. The client always streams (`stream: true` with `include_usage`), even for callers
 * that collect the whole answer: one code path, a real time to first token, the same cut-off accounting.
 */
export interface UpstreamChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  /** Always sent: the upstream never picks a length of its own. */
  readonly maxTokens: number;
  readonly temperature?: number;
  /** Sent as OpenAI `tools` (type function); left out when empty. */
  readonly tools?: readonly ToolDefinition[];
  readonly toolChoice?: ToolChoice;
  /** Sent as the header `x-region`. */
  readonly region: Region;
  /** The caller's signal (client gone, total deadline): aborts the HTTP request at once, mid-read included. */
  readonly signal: AbortSignal;
  /** Deadline for connect + response headers + the first content chunk. */
  readonly firstTokenTimeoutMs: number;
  /** Deadline for each wait on the upstream after the first content chunk. */
  readonly idleTimeoutMs: number;
}

/** One piece of a streamed tool call, as the upstream sent it: `index` says which call it belongs to. */
export interface ToolCallDelta {
  readonly index: number;
  /** Present in a call's first piece. */
  readonly id?: string;
  readonly name?: string;
  readonly argumentsDelta?: string;
}

/** What a stream yields. Role-only chunks, empty deltas, comments and `[DONE]` yield nothing. */
export type UpstreamEvent =
  /** The content of one upstream chunk (one chunk of output). */
  | { readonly type: 'delta'; readonly text: string }
  /** The tool-call pieces of one upstream chunk (counted as one chunk of output, like a content delta). */
  | { readonly type: 'tool_calls'; readonly deltas: readonly ToolCallDelta[] }
  | { readonly type: 'finish'; readonly reason: FinishReason }
  /** cachedPromptTokens and cacheWriteTokens are part of promptTokens (0 when the upstream does not say). */
  | {
      readonly type: 'usage';
      readonly promptTokens: number;
      readonly completionTokens: number;
      readonly cachedPromptTokens: number;
      readonly cacheWriteTokens: number;
    };

/** How a call ended: complete (after `[DONE]`, or a clean end after a `finish_reason`), or its failure. */
export type StreamEnd = { readonly ok: true } | { readonly ok: false; readonly failure: UpstreamFailure };

/**
 * An OpenAI-compatible chat completions upstream.
 *
 * `streamChat` hands the events of each network read to `onRead` (synchronously, in order) and resolves how the
 * stream ended; failures resolve as values (see ./errors). Aborting `signal` aborts the HTTP request at once: the
 * upstream sees the connection close.
 */
export interface UpstreamClient {
  streamChat(req: UpstreamChatRequest, onRead: (events: readonly UpstreamEvent[]) => void): Promise<StreamEnd>;
  /** Closes the pooled connections. Streams still open are destroyed. */
  close(): Promise<void>;
}
