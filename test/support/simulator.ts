import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import type { SimTimers } from '../../src/simulator/exchange';
import type { Simulator } from '../../src/simulator/server';

/** One SSE event as the client saw it: its data, and when it arrived (ms after the request was sent). */
export interface SseEvent {
  readonly data: string;
  readonly atMs: number;
}

export interface StreamResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly events: readonly SseEvent[];
  /** Set when the body ended in an error (connection closed mid-stream, client abort). */
  readonly error: Error | undefined;
  /** When the body ended or failed, ms after the request was sent. */
  readonly endMs: number;
}

export interface JsonResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly ms: number;
}

export const AUTH = { authorization: 'Bearer sk-test' } as const;

/** Timers that count what the simulator schedules and what is still pending. */
export function countingTimers(): SimTimers & { live(): number; scheduled(): number } {
  const pending = new Set<unknown>();
  let scheduled = 0;
  return {
    setTimeout(fn, ms) {
      scheduled++;
      const h = setTimeout(() => {
        pending.delete(h);
        fn();
      }, ms);
      pending.add(h);
      return h;
    },
    clearTimeout(h) {
      pending.delete(h);
      clearTimeout(h as NodeJS.Timeout);
    },
    live: () => pending.size,
    scheduled: () => scheduled,
  };
}

/** A client of one simulator over its own keep-alive pool (closed by close()). */
export class SimClient {
  private readonly agent = new Agent({ keepAliveTimeout: 10_000 });
  readonly origin: string;

  constructor(readonly sim: Simulator) {
    this.origin = new URL(sim.url).origin;
  }

  async json(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResult> {
    const t0 = performance.now();
    const res = await request(`${this.origin}${path}`, {
      method,
      dispatcher: this.agent,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, ms: performance.now() - t0 };
  }

  chat(body: unknown, headers: Record<string, string> = { ...AUTH }): Promise<JsonResult> {
    return this.json('POST', '/v1/chat/completions', body, headers);
  }

  /**
   * Sends a chat request and reads its body as SSE. `onEvent` may return 'abort' to abort the request (the client
   * going away). Connection errors before the headers reject; errors in the body are returned in `error`.
   */
  async stream(
    body: unknown,
    opts: { headers?: Record<string, string>; onEvent?: (e: SseEvent, all: readonly SseEvent[]) => 'abort' | void } = {},
  ): Promise<StreamResult> {
    const t0 = performance.now();
    const controller = new AbortController();
    const res = await request(`${this.origin}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json', ...(opts.headers ?? AUTH) },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    const events: SseEvent[] = [];
    let error: Error | undefined;
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        const atMs = performance.now() - t0;
        buffer += (chunk as Buffer).toString('utf8');
        let sep: number;
        while ((sep = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, sep);
          buffer = buffer.slice(sep + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          const event = { data, atMs };
          events.push(event);
          if (opts.onEvent?.(event, events) === 'abort') controller.abort();
        }
      }
    } catch (e) {
      error = e as Error;
    }
    return { status: res.statusCode, headers: res.headers, events, error, endMs: performance.now() - t0 };
  }

  async addFault(spec: Record<string, unknown>): Promise<void> {
    const r = await this.json('POST', '/__sim/faults', spec);
    if (r.status !== 201) throw new Error(`fault not queued: ${r.status} ${r.text}`);
  }

  async stats(): Promise<{ requests: Record<string, number>; openStreams: number; abortedByClient: number }> {
    return JSON.parse((await this.json('GET', '/__sim/stats')).text);
  }

  async reset(): Promise<void> {
    await this.json('DELETE', '/__sim/faults');
    await this.json('DELETE', '/__sim/stats');
  }

  /** Polls the stats until `pred` holds (or fails the wait after timeoutMs). */
  async waitForStats(pred: (s: Awaited<ReturnType<SimClient['stats']>>) => boolean, timeoutMs = 2000): Promise<Awaited<ReturnType<SimClient['stats']>>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (pred(s) || performance.now() > deadline) return s;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** Parsed JSON of the data events that carry a chunk (everything but [DONE]). */
export function chunksOf(events: readonly SseEvent[]): any[] {
  return events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
}

/** The content-bearing chunks of a stream. */
export function contentEvents(events: readonly SseEvent[]): SseEvent[] {
  return events.filter((e) => {
    if (e.data === '[DONE]') return false;
    const c = JSON.parse(e.data);
    return typeof c.choices?.[0]?.delta?.content === 'string';
  });
}
