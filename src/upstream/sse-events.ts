import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { retryable, type UpstreamError } from './errors';
import type { UpstreamEvent } from './types';

/**
 * Turns the bytes of an OpenAI chat.completion.chunk SSE stream into UpstreamEvents. Pure: no I/O, no timers.
 *
 * - Bytes may be split anywhere, multi-byte UTF-8 characters included.
 * - Comments, blank lines, `event:`/`id:` fields, unknown fields, role-only and empty deltas yield nothing.
 * - A chunk carrying `usage` (OpenAI sends it last, with `choices: []`) yields a `usage` event.
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
  const text = new TextDecoder('utf-8');
  let out: UpstreamEvent[] = [];
  let done = false;
  let finished = false;
  let sawContent = false;
  let failure: UpstreamError | null = null;

  const fail = (beforeContent: 'GARBAGE' | 'STREAM_ERROR'): void => {
    failure ??= retryable(sawContent ? 'INTERRUPTED' : beforeContent);
  };

  const onEvent = (ev: EventSourceMessage): void => {
    if (done || failure) return;
    const data = ev.data.trim();
    if (data === '[DONE]') {
      done = true;
      return;
    }
    if (data === '') return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      fail('GARBAGE');
      return;
    }
    if (typeof chunk !== 'object' || chunk === null || Array.isArray(chunk)) {
      fail('GARBAGE');
      return;
    }
    const c = chunk as { choices?: unknown; usage?: unknown; error?: unknown };
    if (c.error !== undefined && c.error !== null) {
      fail('STREAM_ERROR');
      return;
    }
    if (Array.isArray(c.choices)) {
      for (const choice of c.choices as unknown[]) {
        if (typeof choice !== 'object' || choice === null) continue;
        const ch = choice as { index?: unknown; delta?: { content?: unknown } | null; finish_reason?: unknown };
        // We never ask for n > 1; a stray other choice is not our answer.
        if (ch.index !== undefined && ch.index !== 0) continue;
        const content = ch.delta?.content;
        if (typeof content === 'string' && content !== '') {
          sawContent = true;
          out.push({ type: 'delta', text: content });
        }
        if (typeof ch.finish_reason === 'string' && ch.finish_reason !== '') finished = true;
      }
    }
    const usage = readUsage(c.usage);
    if (usage) out.push(usage);
  };

  const parser = createParser({
    onEvent,
    onError: (err) => {
      // Unknown fields are ignored, as the SSE spec says; only an event too large to buffer is a failure.
      if (err.type === 'max-buffer-size-exceeded') fail('GARBAGE');
    },
    maxBufferSize: MAX_SSE_EVENT_CHARS,
  });

  const take = (): UpstreamEvent[] => {
    const events = out;
    out = [];
    return events;
  };

  return {
    push(chunk) {
      if (failure) throw failure;
      if (done) return [];
      parser.feed(typeof chunk === 'string' ? chunk : text.decode(chunk, { stream: true }));
      return take();
    },
    end() {
      if (failure) throw failure;
      if (done) return [];
      // A last event not followed by a blank line still counts (a peer may close right after it).
      parser.feed(`${text.decode()}\n\n`);
      const events = take();
      if (!failure && !done && !finished) failure = retryable('INTERRUPTED');
      return events;
    },
    get failure() {
      return failure;
    },
    get done() {
      return done;
    },
    get sawContent() {
      return sawContent;
    },
  };
}

function readUsage(u: unknown): UpstreamEvent | null {
  if (typeof u !== 'object' || u === null) return null;
  const { prompt_tokens: p, completion_tokens: c } = u as { prompt_tokens?: unknown; completion_tokens?: unknown };
  if (!isCount(p) || !isCount(c)) return null;
  return { type: 'usage', promptTokens: p, completionTokens: c };
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
