import { badInput } from '../errors';
import { formatUsd, MAX_EXACT_MICROS, type Micros } from '../accounting/money';
import type { ProfileInfo, Region } from '../catalog/types';
import type { ToolCall } from '../upstream/types';
import { checkTools, type ToolChoiceInput, type ToolInput } from './tool-input';

export type ChatRole = 'SYSTEM' | 'USER' | 'ASSISTANT' | 'TOOL';

export interface ChatInput {
  readonly profile: string;
  readonly messages: ReadonlyArray<{
    readonly role: ChatRole;
    readonly content: string;
    readonly toolCalls?: ReadonlyArray<ToolCall> | null;
    readonly toolCallId?: string | null;
  }>;
  readonly tools?: ReadonlyArray<ToolInput> | null;
  readonly toolChoice?: ToolChoiceInput | null;
  readonly maxTokens?: number | null;
  readonly temperature?: number | null;
  readonly region?: Region | null;
  readonly idempotencyKey?: string | null;
  /** chatStream only: the least milliseconds between two content events (0..MAX_FLUSH_MS); 0 = one per read. */
  readonly flushMs?: number | null;
  /**
   * Internal, not in GraphQL: route to this model id with its default fallback chain instead of `profile` (the
   * OpenAI-compatible surface, whose `model` may name either). NOT_FOUND when the catalog has no such model.
   */
  readonly model?: string | null;
}

export const MAX_MESSAGES = 256;
export const MAX_IDEMPOTENCY_KEY = 200;
export const MAX_FLUSH_MS = 1000;

/** The checks that need no profile: run first, so a bad request touches nothing. */
export function checkShape(input: ChatInput, opts: { mode: 'collect' | 'stream'; maxMessageBytes: number }): { messageBytes: number } {
  const n = input.messages.length;
  if (n < 1 || n > MAX_MESSAGES) throw badInput('messages', `expected 1 to ${MAX_MESSAGES} messages, got ${n}`);
  let bytes = 0;
  for (const m of input.messages) bytes += Buffer.byteLength(m.content, 'utf8');
  // Tools and tool calls are part of the prompt: they count toward the same limit (and the hold's upper bound).
  bytes += checkTools(input).toolBytes;
  if (bytes > opts.maxMessageBytes) {
    throw badInput('messages', `the messages (with tools and tool calls) total ${bytes} bytes; the limit is ${opts.maxMessageBytes} bytes`);
  }
  const t = input.temperature;
  if (t !== undefined && t !== null && !(Number.isFinite(t) && t >= 0 && t <= 2)) {
    throw badInput('temperature', `expected a number from 0 to 2, got ${t}`);
  }
  const key = input.idempotencyKey;
  if (key !== undefined && key !== null) {
    if (opts.mode === 'stream') throw badInput('idempotencyKey', 'is accepted by the chat mutation only, not by chatStream');
    if (key.length < 1 || key.length > MAX_IDEMPOTENCY_KEY) {
      throw badInput('idempotencyKey', `expected 1 to ${MAX_IDEMPOTENCY_KEY} characters, got ${key.length}`);
    }
  }
  checkFlushMs(input.flushMs, opts.mode);
  return { messageBytes: bytes };
}

function checkFlushMs(flushMs: number | null | undefined, mode: 'collect' | 'stream'): void {
  if (flushMs === undefined || flushMs === null) return;
  if (mode === 'collect') throw badInput('flushMs', 'is accepted by chatStream only: the chat mutation returns the whole answer at once');
  if (!Number.isInteger(flushMs) || flushMs < 0 || flushMs > MAX_FLUSH_MS) {
    throw badInput('flushMs', `expected a whole number of milliseconds from 0 to ${MAX_FLUSH_MS}, got ${flushMs}`);
  }
}

/** maxTokens left out takes the profile's default; otherwise 1..cap. */
export function resolveMaxTokens(input: ChatInput, profile: ProfileInfo): number {
  const m = input.maxTokens;
  if (m === undefined || m === null) return profile.defaultMaxTokens;
  if (!Number.isInteger(m) || m < 1 || m > profile.maxTokensCap) {
    throw badInput('maxTokens', `expected a whole number from 1 to ${profile.maxTokensCap} for profile ${profile.name}, got ${m}`);
  }
  return m;
}

/** Upper bound of prompt tokens for the budget hold: no tokenizer yields more tokens than bytes, plus role framing. */
export const promptTokensUpperBound = (messageBytes: number, messages: number): number => messageBytes + 8 * messages;

/** The usual estimate (about four bytes a token, plus framing) for the soft tokens-per-minute charge. */
export const promptTokensEstimate = (messageBytes: number, messages: number): number => Math.ceil(messageBytes / 4) + 4 * messages;

/**
 * A request whose worst case (each attempt of its chain consuming its whole bound at its model's prices) is more
 * than the gate keeps exact is refused before anything is written: BAD_USER_INPUT naming maxTokens and the bound.
 */
export function checkHoldBound(holdMicros: Micros, attempts: number, profile: string): void {
  const worst = holdMicros * BigInt(Math.max(1, attempts));
  if (worst > MAX_EXACT_MICROS) {
    throw badInput(
      'maxTokens',
      `this request could cost up to $${formatUsd(worst)} at the prices of profile ${profile}'s models, more than the largest amount the gateway keeps exact ($${formatUsd(MAX_EXACT_MICROS)}); lower maxTokens or shorten the messages`,
    );
  }
}
