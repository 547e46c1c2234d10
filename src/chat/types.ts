import type { Micros } from '../accounting/money';
import type { Outcome } from '../accounting/ledger';
import type { UsageSource } from '../routing';
import type { FinishReason, ToolCall, ToolCallDelta } from '../upstream/types';

export interface UsageView {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Of promptTokens: read from / written to the provider's prompt cache. */
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
  readonly costMicros: Micros;
  readonly source: UsageSource;
}

/** One attempt as the API shows it (chat results and request records alike). */
export interface AttemptView {
  readonly model: string;
  readonly ok: boolean;
  /** An AttemptRecord's code; a string because request records also read rows written by earlier releases. */
  readonly error: string | null;
  readonly latencyMs: number;
}

/** The chat mutation's answer (GraphQL ChatResult; money as integer micro-dollars). */
export interface ChatResult {
  readonly requestId: string;
  readonly model: string;
  readonly content: string;
  /** How the answer ended; anything but COMPLETED carries the partial, charged content. */
  readonly outcome: Outcome;
  readonly usage: UsageView;
  readonly ttftMs: number | null;
  readonly totalMs: number;
  readonly attempts: readonly AttemptView[];
  /** Assembled from the stream, in index order; empty for a text answer. */
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: FinishReason | null;
}

/** One event of chatStream (GraphQL ChatStreamEvent). */
export interface ChatStreamEvent {
  readonly requestId: string;
  readonly model: string;
  readonly delta: string | null;
  readonly done: boolean;
  readonly outcome: Outcome | null;
  readonly usage: UsageView | null;
  readonly ttftMs: number | null;
  readonly attempts: readonly AttemptView[] | null;
  /** The tool-call pieces of one upstream chunk, as sent; null on content and done events. */
  readonly toolCallDeltas: readonly ToolCallDelta[] | null;
  readonly finishReason: FinishReason | null;
}
