import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { retryable, type UpstreamError } from './errors';
import type { FinishReason, ToolCallDelta, UpstreamEvent } from './types';

/**
 * Turns the bytes of an OpenAI chat.completion.chunk SSE stream into UpstreamEvents. Pure: no I/O, no timers.
 *
 * - Bytes may be split anywhere, multi-byte UTF-8 characters included.
 * - Comments, blank lines, `event:`/`id:` fields, unknown fields, role-only and empty deltas yield nothing.
 * - `delta.tool_calls` pieces yield one `tool_calls` event per chunk (they count as content: model output).
 * - A `finish_reason` OpenAI defines yields a `finish` event (stop, length, tool_calls, content_filter).
 * - A chunk carrying `usage` (OpenAI sends it last, with `choices: []`) yields a `usage` event, with
 *   `prompt_tokens_details.cached_tokens` and `cache_write_tokens` when present.
 * - After `data: [DONE]`, `done` is true and everything that follows is ignored.
 *
 * Failures are retryable UpstreamErrors. `push` returns the events completed before the failure and sets `failure`;
 * the caller delivers those events, then throws `failure`; `end` works the same way. Calls after a failure throw
 * it. The failures:
 * - a `data:` payload that is not a JSON object, or an SSE event larger than the buffer limit:
 *   GARBAGE before any content, INTERRUPTED after it (the content so far was good; the rest is lost, exactly as
 *   if the connection had been cut, so the router applies the mid-stream rule to it);
 * - an `{"error": ...}` object in the stream: STREAM_ERROR before content, INTERRUPTED after;
 * - `end()` before `[DONE]` and before any `finish_reason`: INTERRUPTED (a clean end after a finish_reason is
 *   accepted: usage is then simply missing).
 */
export interface SseEventDecoder {
  /** Feeds bytes (or text); returns the events they completed, in order (those before a failure, if one occurs). */
  push(chunk: Uint8Array | string): UpstreamEvent[];
  /** The response ended: returns a last unterminated event's events; sets `failure` unless the stream was complete. */
  end(): UpstreamEvent[];
  /** The failure met so far, if any. */
  readonly failure: UpstreamError | null;
  /** `[DONE]` was seen. */
  readonly done: boolean;
  /** At least one content delta was produced. */
  readonly sawContent: boolean;
}

/** One SSE event may not exceed this many characters (an OpenAI chunk is a few hundred). */
export const MAX_SSE_EVENT_CHARS = 1 << 20;

export function createSseEventDecoder(): SseEventDecoder {
  return new SseDecoder();
}

/** The decoder's state between reads: plain fields, read by the client after every network read. */
class SseDecoder implements SseEventDecoder {
  failure: UpstreamError | null = null;
  done = false;
  sawContent = false;
  /** A finish_reason was seen: a clean end without [DONE] is then accepted. */
  private finished = false;
  private out: UpstreamEvent[] = [];
  private readonly text = new TextDecoder('utf-8');
  private readonly parser = createParser({
    onEvent: (ev) => this.onEvent(ev),
    onError: (err) => {
      // Unknown fields are ignored, as the SSE spec says; only an event too large to buffer is a failure.
      if (err.type === 'max-buffer-size-exceeded') this.fail('GARBAGE');
    },
    maxBufferSize: MAX_SSE_EVENT_CHARS,
  });

  push(chunk: Uint8Array | string): UpstreamEvent[] {
    if (this.failure) throw this.failure;
    if (this.done) return [];
    this.parser.feed(typeof chunk === 'string' ? chunk : this.text.decode(chunk, { stream: true }));
    return this.take();
  }

  end(): UpstreamEvent[] {
    if (this.failure) throw this.failure;
    if (this.done) return [];
    // A last event not followed by a blank line still counts (a peer may close right after it).
    this.parser.feed(`${this.text.decode()}\n\n`);
    const events = this.take();
    if (!this.failure && !this.done && !this.finished) this.failure = retryable('INTERRUPTED');
    return events;
  }

  private take(): UpstreamEvent[] {
    const events = this.out;
    this.out = [];
    return events;
  }

  private fail(beforeContent: 'GARBAGE' | 'STREAM_ERROR'): void {
    this.failure ??= retryable(this.sawContent ? 'INTERRUPTED' : beforeContent);
  }

  private onEvent(ev: EventSourceMessage): void {
    if (this.done || this.failure) return;
    const data = ev.data.trim();
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    if (data === '') return;
    const c = parseChunk(data);
    if (typeof c === 'string') return this.fail(c);
    if (Array.isArray(c.choices)) for (const choice of c.choices as unknown[]) this.readChoice(choice);
    const usage = readUsage(c.usage);
    if (usage) this.out.push(usage);
  }

  private readChoice(choice: unknown): void {
    if (typeof choice !== 'object' || choice === null) return;
    const ch = choice as { index?: unknown; delta?: { content?: unknown; tool_calls?: unknown } | null; finish_reason?: unknown };
    // We never ask for n > 1; a stray other choice is not our answer.
    if (ch.index !== undefined && ch.index !== 0) return;
    const content = ch.delta?.content;
    if (typeof content === 'string' && content !== '') {
      this.sawContent = true;
      this.out.push({ type: 'delta', text: content });
    }
    const calls = ch.delta?.tool_calls === undefined ? NO_CALLS : readToolCallDeltas(ch.delta.tool_calls);
    if (calls.length > 0) {
      this.sawContent = true;
      this.out.push({ type: 'tool_calls', deltas: calls });
    }
    if (typeof ch.finish_reason === 'string' && ch.finish_reason !== '') {
      this.finished = true;
      const reason = FINISH_REASONS[ch.finish_reason];
      if (reason !== undefined) this.out.push({ type: 'finish', reason });
    }
  }
}

type Chunk = { choices?: unknown; usage?: unknown; error?: unknown };

/** A `data:` payload as a chunk object, or the failure it is: not a JSON object (GARBAGE), an error object (STREAM_ERROR). */
function parseChunk(data: string): Chunk | 'GARBAGE' | 'STREAM_ERROR' {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    return 'GARBAGE';
  }
  if (typeof chunk !== 'object' || chunk === null || Array.isArray(chunk)) return 'GARBAGE';
  const c = chunk as Chunk;
  return c.error !== undefined && c.error !== null ? 'STREAM_ERROR' : c;
}

const FINISH_REASONS: Readonly<Record<string, FinishReason>> = {
  stop: 'STOP',
  length: 'LENGTH',
  tool_calls: 'TOOL_CALLS',
  function_call: 'TOOL_CALLS',
  content_filter: 'CONTENT_FILTER',
};

/** Content chunks (the hot path) carry no tool calls: no array is allocated for them. */
const NO_CALLS: readonly ToolCallDelta[] = [];

/** The well-formed pieces of a `delta.tool_calls` array; a piece without a whole-number index is not ours to place. */
function readToolCallDeltas(v: unknown): ToolCallDelta[] {
  if (!Array.isArray(v)) return [];
  const out: ToolCallDelta[] = [];
  for (const item of v as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const t = item as { index?: unknown; id?: unknown; function?: { name?: unknown; arguments?: unknown } | null };
    if (!isCount(t.index)) continue;
    const fn = typeof t.function === 'object' && t.function !== null ? t.function : {};
    const d: { index: number; id?: string; name?: string; argumentsDelta?: string } = { index: t.index };
    if (typeof t.id === 'string' && t.id !== '') d.id = t.id;
    if (typeof fn.name === 'string' && fn.name !== '') d.name = fn.name;
    if (typeof fn.arguments === 'string' && fn.arguments !== '') d.argumentsDelta = fn.arguments;
    if (d.id !== undefined || d.name !== undefined || d.argumentsDelta !== undefined) out.push(d);
  }
  return out;
}

function readUsage(u: unknown): UpstreamEvent | null {
  if (typeof u !== 'object' || u === null) return null;
  const {
    prompt_tokens: p,
    completion_tokens: c,
    prompt_tokens_details: details,
  } = u as {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown; cache_write_tokens?: unknown } | null;
  };
  if (!isCount(p) || !isCount(c)) return null;
  const cached = details?.cached_tokens;
  const written = details?.cache_write_tokens;
  return {
    type: 'usage',
    promptTokens: p,
    completionTokens: c,
    cachedPromptTokens: isCount(cached) ? cached : 0,
    cacheWriteTokens: isCount(written) ? written : 0,
  };
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
