import type { ChatMessage, ToolDefinition } from '../upstream/types';
import type { FailureCode } from './fallback-step';

export type UsageSource = 'PROVIDER' | 'ESTIMATED';

/** Why a model was skipped without a call. */
export type SkipReason = 'CIRCUIT_OPEN' | 'RETRY_AFTER';

/** Every code an attempt's `error` can hold. */
export type AttemptErrorCode = FailureCode | SkipReason;

/**
 * One try of one model, as the request's record and bill see it. `error` is a code: an upstream failure code
 * (HTTP_500, TIMEOUT, STALL, INTERRUPTED...), CIRCUIT_OPEN / RETRY_AFTER for a model skipped without a call
 * (latencyMs 0), CLIENT_CANCELLED or TOTAL_TIMEOUT. Tokens are what the attempt consumed, so failed attempts
 * that streamed partial content can be billed too.
 */
export interface AttemptRecord {
  readonly model: string;
  readonly ok: boolean;
  readonly error: AttemptErrorCode | null;
  readonly latencyMs: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly usageSource: UsageSource;
  /** Of promptTokens, when the provider reported a prompt cache (absent: none). */
  readonly cachedPromptTokens?: number;
  readonly cacheWriteTokens?: number;
}

export function skippedAttempt(model: string, reason: SkipReason): AttemptRecord {
  return { model, ok: false, error: reason, latencyMs: 0, promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' };
}

/**
 * The gateway's own estimate of a prompt's tokens when the upstream does not say: ceil(characters / 4) + 4 per
 * message (the usual rule of thumb for English with an OpenAI-style tokenizer, plus the per-message framing). The
 * simulator counts the same way, so estimates and provider figures agree in tests. A message's text includes the
 * name and arguments of each tool call it carries; each tool definition counts its name, description and JSON
 * parameters likewise, plus 4.
 */
export function estimatePromptTokens(messages: readonly ChatMessage[], tools: readonly ToolDefinition[] = []): number {
  let n = 0;
  for (const m of messages) {
    let chars = m.content.length;
    for (const c of m.toolCalls ?? []) chars += c.name.length + c.arguments.length;
    n += Math.ceil(chars / 4) + 4;
  }
  for (const t of tools) n += Math.ceil(toolText(t).length / 4) + 4;
  return n;
}

/** The text a tool definition adds to a prompt: name, description and parameters as JSON. */
export function toolText(t: ToolDefinition): string {
  return t.name + (t.description ?? '') + JSON.stringify(t.parameters ?? {});
}
