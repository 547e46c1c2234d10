import type { Region } from '../catalog/types';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

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
  /** Sent as the header `x-region`. */
  readonly region: Region;
  /** The caller's signal (client gone, total deadline): aborts the HTTP request at once, mid-read included. */
  readonly signal: AbortSignal;
  /** Deadline for connect + response headers + the first content chunk. */
  readonly firstTokenTimeoutMs: number;
  /** Deadline for each wait on the upstream after the first content chunk. */
  readonly idleTimeoutMs: number;
  /**
   * Merge the content chunks that arrive in one network read into one delta event (with their count). For callers
   * that show nothing until the end (the chat mutation): 150 tokens then cost one pass through the pipeline, not 150.
   */
  readonly coalesce?: boolean;
}

/** What a stream yields. Role-only chunks, empty deltas, comments and `[DONE]` yield nothing. */
export type UpstreamEvent =
  /** `chunks`: how many upstream chunks the text spans (more than 1 only when the request asked to coalesce). */
  | { readonly type: 'delta'; readonly text: string; readonly chunks?: number }
  | { readonly type: 'usage'; readonly promptTokens: number; readonly completionTokens: number };

/**
 * An OpenAI-compatible chat completions upstream.
 *
 * `streamChat` yields the stream's events and ends normally after `[DONE]` (or on a clean end of the response
 * after a `finish_reason`). Every failure is thrown as an `UpstreamError` (see ./errors). Breaking out of the
 * iteration, or aborting `signal`, aborts the HTTP request: the upstream sees the connection close.
 */
export interface UpstreamClient {
  streamChat(req: UpstreamChatRequest): AsyncIterable<UpstreamEvent>;
  /** Closes the pooled connections. Streams still open are destroyed. */
  close(): Promise<void>;
}
