import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Logger } from '../infra/logger';
import { chatEndpoint, chatRequestBody, chatRequestHeaders } from './chat-request';
import { UpstreamError, classifyStatus, parseRetryAfter } from './errors';
import { createSseEventDecoder } from './sse-events';
import type { StreamEnd, UpstreamChatRequest, UpstreamClient, UpstreamEvent } from './types';

export type UpstreamLogger = Pick<Logger, 'error' | 'warn' | 'debug'>;

export interface UpstreamClientOptions {
  /** OpenAI-compatible base URL including the version path, e.g. `http://127.0.0.1:4010/v1`. */
  readonly baseUrl: string;
  /** The gateway's own key, sent as a bearer token. Never logged, never put in an error. */
  readonly apiKey: string;
  readonly logger?: UpstreamLogger;
  /** Most sockets kept to the upstream at once; default 256. */
  readonly connections?: number;
}

type AbortWhy = 'caller' | 'first_token' | 'idle' | 'cleanup';

/**
 * An UpstreamClient over one keep-alive undici Pool (not global fetch, not the openai SDK: the issue measured
 * fetch at 3.5-4x the CPU per request).
 *
 * Deadlines are the client's own (undici's header and body timeouts are off): the first-token deadline runs from
 * the call to the first content chunk (connect, headers, role-only chunks included); after content, the idle
 * deadline bounds each wait for the next bytes. The body is consumed in bulk: each network read is decoded at once
 * (one JSON.parse per SSE event) and its events handed to `onRead` synchronously, so the consumer's pace never
 * holds the socket and no per-token promise exists. Either deadline or the caller's signal aborts the undici
 * request, which closes the connection: the upstream sees it.
 *
 * Failures resolve as values (`{ ok: false, failure }`, see ./errors); only an exception thrown by `onRead` rejects.
 * A 401/403 is logged at error level (status and model only: neither the key nor the upstream's body is ever
 * logged or put in a message).
 */
export function makeUpstreamClient(opts: UpstreamClientOptions): UpstreamClient {
  const { origin, path } = chatEndpoint(opts.baseUrl);
  const pool = new Pool(origin, {
    connections: opts.connections ?? 256,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const target: Target = { pool, origin, path, apiKey: opts.apiKey, log: opts.logger };

  async function streamChat(req: UpstreamChatRequest, onRead: (events: readonly UpstreamEvent[]) => void): Promise<StreamEnd> {
    if (req.signal.aborted) return { ok: false, failure: { kind: 'aborted' } };
    const firstTokenDeadline = performance.now() + req.firstTokenTimeoutMs;
    const call = new UpstreamCall(req, opts.logger);
    let complete = false;
    try {
      call.arm(req.firstTokenTimeoutMs, 'first_token');
      const res = await openStream(target, req, call);
      call.disarm();
      await readEvents(res, req, call, firstTokenDeadline, onRead);
      complete = true;
      return { ok: true };
    } catch (e) {
      if (e instanceof UpstreamError) return { ok: false, failure: e.failure };
      throw e; // onRead's own exception: a bug of the caller, not the upstream's answer
    } finally {
      call.finish(complete);
    }
  }

  return {
    streamChat,
    async close() {
      if (!pool.destroyed) await pool.destroy();
    },
  };
}

interface Target {
  readonly pool: Pool;
  readonly origin: string;
  readonly path: string;
  readonly apiKey: string;
  readonly log: UpstreamLogger | undefined;
}

type UpstreamResponse = Awaited<ReturnType<Pool['request']>>;

/**
 * One call's abort: the caller's signal, the deadline timer and the cleanup all abort the same undici request, and
 * the first reason decides which failure the aborted read becomes.
 */
class UpstreamCall {
  readonly controller = new AbortController();
  headersReceived = false;
  readonly decoder = createSseEventDecoder();
  private why: AbortWhy | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly req: UpstreamChatRequest,
    private readonly log: UpstreamLogger | undefined,
  ) {
    req.signal.addEventListener('abort', this.onCallerAbort, { once: true });
  }

  private readonly onCallerAbort = (): void => this.abort('caller');

  private readonly abort = (w: AbortWhy): void => {
    if (this.why !== null) return;
    this.why = w;
    this.controller.abort();
  };

  arm(ms: number, w: AbortWhy): void {
    this.timer = setTimeout(this.abort, Math.max(0, ms), w);
  }

  disarm(): void {
    clearTimeout(this.timer);
  }

  /** An unfinished call is aborted, which closes its connection: the upstream sees it. */
  finish(complete: boolean): void {
    this.disarm();
    this.req.signal.removeEventListener('abort', this.onCallerAbort);
    if (!complete) this.abort('cleanup');
  }

  failureOf(e: unknown): UpstreamError {
    if (e instanceof UpstreamError) return e;
    switch (this.why) {
      case 'caller':
      case 'cleanup':
        return new UpstreamError({ kind: 'aborted' }, { cause: e });
      case 'first_token':
        return new UpstreamError({ kind: 'retryable', code: 'TIMEOUT' }, { cause: e });
      case 'idle':
        return new UpstreamError({ kind: 'retryable', code: 'STALL' }, { cause: e });
      case null: {
        const err = new UpstreamError({ kind: 'retryable', code: this.headersReceived ? 'INTERRUPTED' : 'CONNECTION' }, { cause: e });
        this.log?.debug({ model: this.req.model, code: err.code, cause: errorCodeOf(e) }, 'upstream connection failed');
        return err;
      }
    }
  }
}

/** Sends the request; a non-2xx answer throws its classified failure. */
async function openStream(t: Target, req: UpstreamChatRequest, call: UpstreamCall): Promise<UpstreamResponse> {
  let res: UpstreamResponse;
  try {
    res = await t.pool.request({
      path: t.path,
      method: 'POST',
      headers: chatRequestHeaders(t.apiKey, req.region),
      body: chatRequestBody(req),
      signal: call.controller.signal,
    });
  } catch (e) {
    throw call.failureOf(e);
  }
  call.headersReceived = true;
  if (res.statusCode >= 200 && res.statusCode <= 299) return res;
  const failure = classifyStatus(res.statusCode, parseRetryAfter(res.headers['retry-after'], Date.now()));
  // Read and drop the error body (up to undici's dump limit) so the socket can be reused; never look at it.
  await res.body.dump().catch(() => undefined);
  if (failure.kind === 'auth') {
    t.log?.error(
      { model: req.model, status: res.statusCode, upstream: t.origin },
      'the upstream rejected the gateway key: check GLOBAL_API_KEY; every request fails until it is fixed',
    );
  }
  throw new UpstreamError(failure);
}

/**
 * Reads the body to its end, handing each network read's events to `onRead` at once. Before content the first-token
 * deadline bounds each wait, after it the idle deadline.
 */
async function readEvents(
  res: UpstreamResponse,
  req: UpstreamChatRequest,
  call: UpstreamCall,
  firstTokenDeadline: number,
  onRead: (events: readonly UpstreamEvent[]) => void,
): Promise<void> {
  const { decoder } = call;
  const chunks = res.body[Symbol.asyncIterator]();
  for (;;) {
    if (decoder.sawContent) call.arm(req.idleTimeoutMs, 'idle');
    else call.arm(firstTokenDeadline - performance.now(), 'first_token');
    let next: IteratorResult<unknown>;
    try {
      next = await chunks.next();
    } catch (e) {
      if (decoder.done) break; // [DONE] was read; how the connection ended after it does not matter
      throw call.failureOf(e);
    } finally {
      call.disarm();
    }
    if (next.done) break;
    const value = next.value;
    const events = decoder.push(value instanceof Uint8Array ? value : String(value));
    if (events.length > 0) onRead(events);
    if (decoder.failure) throw decoder.failure;
    // After [DONE] the loop keeps reading to the end of the response, so the socket returns to the pool.
  }
  const last = decoder.end();
  if (last.length > 0) onRead(last);
  if (decoder.failure) throw decoder.failure;
}

/** A network error's code (ECONNREFUSED, UND_ERR_SOCKET...) for logs; never its message, which may quote a peer. */
function errorCodeOf(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
