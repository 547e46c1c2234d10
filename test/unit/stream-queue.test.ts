import { StreamQueue, type QueueItem } from '../../src/chat/stream-queue';
import type { UpstreamEvent } from '../../src/upstream/types';

const d = (text: string): UpstreamEvent => ({ type: 'delta', text });
const tools = (index: number): UpstreamEvent => ({ type: 'tool_calls', deltas: [{ index, argumentsDelta: `{${index}}` }] });
const brief = (i: QueueItem): string => (i.type === 'delta' ? `text:${i.text}` : i.type === 'tool_calls' ? `tools:${i.deltas[0]!.index}` : i.type);

/** Takes what the queue has ready now (next() calls that resolve without a timer); a waiting next() is kept. */
function taker(q: StreamQueue): () => Promise<string[]> {
  let waiting: { got: QueueItem | null } | null = null;
  return async () => {
    const out: string[] = [];
    for (;;) {
      if (!waiting) {
        const w: { got: QueueItem | null } = { got: null };
        waiting = w;
        void q.next().then((i) => (w.got = i));
      }
      for (let k = 0; k < 5; k++) await Promise.resolve();
      const got = waiting.got;
      if (got === null) return out;
      waiting = null;
      out.push(brief(got));
      if (got.type === 'end') return out;
    }
  };
}

describe('StreamQueue', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('the first chunk goes out alone; the rest of its read is one event; usage and finish are not events', async () => {
    const q = new StreamQueue(0);
    const ready = taker(q);
    q.output('m', [d(' a'), d(' b'), d(' c'), { type: 'finish', reason: 'STOP' }]);
    q.output('m', [d(' d')]);
    q.end();
    expect(await ready()).toEqual(['text: a', 'text: b c d', 'end']);
  });

  it('one event per read while the consumer keeps up', async () => {
    const q = new StreamQueue(0);
    const ready = taker(q);
    q.output('m', [d('1')]);
    expect(await ready()).toEqual(['text:1']);
    q.output('m', [d('2'), d('3')]);
    expect(await ready()).toEqual(['text:23']);
    q.output('m', [d('4')]);
    expect(await ready()).toEqual(['text:4']);
  });

  it('tool-call pieces are events of their own, in order with the text around them', async () => {
    const q = new StreamQueue(0);
    const ready = taker(q);
    q.output('m', [tools(0), d('x'), d('y'), tools(1), d('z')]);
    q.end();
    expect(await ready()).toEqual(['tools:0', 'text:xy', 'tools:1', 'text:z', 'end']);
  });

  it('flushMs holds later text until the interval has passed, merging what comes meanwhile', async () => {
    const q = new StreamQueue(200);
    const ready = taker(q);
    q.output('m', [d('first')]);
    expect(await ready()).toEqual(['text:first']);
    q.output('m', [d('a')]);
    q.output('m', [d('b')]);
    expect(await ready()).toEqual([]);
    await jest.advanceTimersByTimeAsync(200);
    expect(await ready()).toEqual(['text:ab']);
  });

  it('flushMs never holds a tool-call event or the end: held text goes out with them', async () => {
    const q = new StreamQueue(1000);
    const ready = taker(q);
    q.output('m', [d('first')]);
    expect(await ready()).toEqual(['text:first']);
    q.output('m', [d('a')]);
    expect(await ready()).toEqual([]);
    q.output('m', [tools(0)]);
    expect(await ready()).toEqual(['text:a', 'tools:0']);
    q.output('m', [d('b')]);
    q.end();
    expect(await ready()).toEqual(['text:b', 'end']);
  });

  it('discard (collect mode) drops what is pending and tells the consumer; the next attempt starts afresh', async () => {
    const q = new StreamQueue(0);
    const ready = taker(q);
    q.output('a', [d('1')]);
    expect(await ready()).toEqual(['text:1']);
    q.output('a', [d('2'), d('3')]);
    q.discard();
    q.output('b', [d('x'), d('y')]);
    q.end();
    expect(await ready()).toEqual(['discard', 'text:x', 'text:y', 'end']);
  });

  it('a failed run ends the stream with its error', async () => {
    const q = new StreamQueue(0);
    q.fail(new Error('boom'));
    const item = await q.next();
    expect(item).toMatchObject({ type: 'error', error: new Error('boom') });
  });
});
