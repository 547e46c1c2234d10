import { UpstreamError } from '../../src/upstream/errors';
import { createSseEventDecoder } from '../../src/upstream/sse-events';
import type { UpstreamEvent } from '../../src/upstream/types';

const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"glm-5",';
const token = (text: string, first = false): string =>
  `data: ${head}"choices":[{"index":0,"delta":{${first ? '"role":"assistant",' : ''}"content":${JSON.stringify(text)}},"finish_reason":null}]}\n\n`;
const finish = `data: ${head}"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`;
const usage = `data: ${head}"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n`;
const DONE = 'data: [DONE]\n\n';

/** A realistic stream: role-only opener, a comment, CRLF lines, multi-byte text, finish, usage, [DONE]. */
const FULL =
  `: keep-alive\n\n` +
  `data: ${head}"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n` +
  token('Ré') +
  `\n\n` +
  token(' 🙂 cursion', false).replace(/\n\n$/, '\r\n\r\n') +
  `event: message\nid: 7\n` +
  token(' 是') +
  finish +
  usage +
  DONE;

const EXPECTED: UpstreamEvent[] = [
  { type: 'delta', text: 'Ré' },
  { type: 'delta', text: ' 🙂 cursion' },
  { type: 'delta', text: ' 是' },
  { type: 'finish', reason: 'STOP' },
  { type: 'usage', promptTokens: 12, completionTokens: 3, cachedPromptTokens: 0, cacheWriteTokens: 0 },
];

interface Decoded {
  readonly events: UpstreamEvent[];
  readonly error: UpstreamError | null;
  readonly done: boolean;
}

/** Feeds the pieces as a client would: deliver what push returned, then stop at a failure. */
function decode(pieces: readonly (Uint8Array | string)[]): Decoded {
  const d = createSseEventDecoder();
  const events: UpstreamEvent[] = [];
  try {
    for (const p of pieces) {
      events.push(...d.push(p));
      if (d.failure) throw d.failure;
    }
    events.push(...d.end());
    if (d.failure) throw d.failure;
    return { events, error: null, done: d.done };
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    return { events, error: e, done: d.done };
  }
}

const codeOf = (r: Decoded): string | null => (r.error ? r.error.code : null);

describe('SSE decoding of a chat completion stream', () => {
  const bytes = Buffer.from(FULL, 'utf8');

  it('yields content deltas and the usage chunk, and ends at [DONE]', () => {
    const r = decode([bytes]);
    expect(r).toEqual({ events: EXPECTED, error: null, done: true });
  });

  it('gives the same events with the bytes split at every position (multi-byte characters included)', () => {
    for (let i = 0; i <= bytes.length; i++) {
      const r = decode([bytes.subarray(0, i), bytes.subarray(i)]);
      if (r.error || JSON.stringify(r.events) !== JSON.stringify(EXPECTED)) {
        throw new Error(`split at byte ${i}: ${JSON.stringify(r)}`);
      }
    }
  });

  it('gives the same events fed one byte at a time, and split at every pair of positions', () => {
    expect(decode([...bytes].map((b) => Uint8Array.of(b))).events).toEqual(EXPECTED);
    const short = Buffer.from(token('é') + usage + DONE, 'utf8');
    const want = [
      { type: 'delta', text: 'é' },
      { type: 'usage', promptTokens: 12, completionTokens: 3, cachedPromptTokens: 0, cacheWriteTokens: 0 },
    ];
    for (let i = 0; i <= short.length; i++) {
      for (let j = i; j <= short.length; j++) {
        const r = decode([short.subarray(0, i), short.subarray(i, j), short.subarray(j)]);
        if (JSON.stringify(r.events) !== JSON.stringify(want) || r.error) throw new Error(`split at ${i},${j}`);
      }
    }
  });

  it('ignores everything after [DONE]', () => {
    const r = decode([token('a') + DONE + token('b') + 'data: not json\n\n']);
    expect(r).toEqual({ events: [{ type: 'delta', text: 'a' }], error: null, done: true });
  });

  it('accepts a clean end after a finish_reason without usage or [DONE] (usage missing)', () => {
    const r = decode([token('a', true) + token('b') + finish]);
    expect(r).toEqual({
      events: [
        { type: 'delta', text: 'a' },
        { type: 'delta', text: 'b' },
        { type: 'finish', reason: 'STOP' },
      ],
      error: null,
      done: false,
    });
  });

  it('accepts [DONE] without usage: no usage event (the caller estimates)', () => {
    const r = decode([token('a') + finish + DONE]);
    expect(r.events).toEqual([
      { type: 'delta', text: 'a' },
      { type: 'finish', reason: 'STOP' },
    ]);
    expect(r.error).toBeNull();
  });

  it('reads usage carried on the last content chunk too', () => {
    const r = decode([
      `data: ${head}"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n` + DONE,
    ]);
    expect(r.events).toEqual([
      { type: 'delta', text: 'x' },
      { type: 'finish', reason: 'STOP' },
      { type: 'usage', promptTokens: 1, completionTokens: 1, cachedPromptTokens: 0, cacheWriteTokens: 0 },
    ]);
  });

  it('ignores a null usage, other choices, unknown fields and empty data', () => {
    const r = decode([
      `data: ${head}"choices":[{"index":1,"delta":{"content":"other"}}],"usage":null}\n\n` + 'weird-field: 1\n\n' + 'data:\n\n' + token('x') + DONE,
    ]);
    expect(r).toEqual({ events: [{ type: 'delta', text: 'x' }], error: null, done: true });
  });

  it('takes a last event that the peer did not terminate with a blank line', () => {
    expect(decode([token('a') + 'data: [DONE]']).done).toBe(true);
  });
});

describe('SSE decoding failures', () => {
  it('a connection that ends without [DONE] or finish_reason is INTERRUPTED, after the content it carried', () => {
    const r = decode([token('a', true) + token('b')]);
    expect(r.events).toHaveLength(2);
    expect(codeOf(r)).toBe('INTERRUPTED');
    expect(r.error!.failure.kind).toBe('retryable');
  });

  it('an empty response is INTERRUPTED', () => {
    expect(codeOf(decode([]))).toBe('INTERRUPTED');
  });

  it('data that is not JSON before any content is GARBAGE (retryable)', () => {
    // What the simulator's garbage fault sends: a chunk cut inside its JSON, then an HTML error page.
    const garbage = 'data: {"id":"chatcmpl-garbage","choices":[{"delta":{"content":" lor\n\ndata: <html><body>502 Bad Gateway</body></html>\n\n';
    const r = decode([garbage]);
    expect(r.events).toEqual([]);
    expect(codeOf(r)).toBe('GARBAGE');
    expect(r.error!.failure).toEqual({ kind: 'retryable', code: 'GARBAGE' });
    expect(codeOf(decode(['data: 42\n\n']))).toBe('GARBAGE');
    expect(codeOf(decode(['data: [1,2]\n\n']))).toBe('GARBAGE');
  });

  it('data that is not JSON after content is INTERRUPTED, and the content before it is still delivered', () => {
    const r = decode([token('a') + token('b') + 'data: <html>\n\n' + token('c') + DONE]);
    expect(r.events).toEqual([
      { type: 'delta', text: 'a' },
      { type: 'delta', text: 'b' },
    ]);
    expect(codeOf(r)).toBe('INTERRUPTED');
  });

  it('an error object in the stream is STREAM_ERROR before content, INTERRUPTED after', () => {
    const err = 'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n';
    expect(codeOf(decode([err]))).toBe('STREAM_ERROR');
    expect(codeOf(decode([token('a') + err]))).toBe('INTERRUPTED');
  });

  it('never puts the upstream’s text into the error message', () => {
    const r = decode(['data: {"error":{"message":"secret sk-123"}}\n\n']);
    expect(r.error!.message).not.toContain('secret');
    expect(r.error!.message).not.toContain('sk-123');
  });

  it('an event larger than the buffer limit is GARBAGE', () => {
    const r = decode(['data: "' + 'x'.repeat(1 << 20) + '"']);
    expect(codeOf(r)).toBe('GARBAGE');
  });

  it('is spent after a failure: later calls throw the same error', () => {
    const d = createSseEventDecoder();
    d.push('data: nope\n\n');
    const f = d.failure;
    expect(f).not.toBeNull();
    expect(() => d.push(token('a'))).toThrow(f!);
    expect(() => d.end()).toThrow(f!);
  });
});
