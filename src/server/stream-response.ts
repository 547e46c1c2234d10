import { STATUS_CODES } from 'node:http';
import type express from 'express';
import type { Refusal } from './stream-operation';

/**
 * Headers of every streamed response: no caching or transforming proxy (no-transform also keeps compression off),
 * and no buffering by nginx-style proxies, so each event leaves when it is produced.
 */
export const STREAM_HEADERS = { 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', connection: 'keep-alive' } as const;

/** What a streaming transport knows about its HTTP exchange. */
export interface StreamExchange {
  /** The Accept header lists a JSON type (or any type): refusals go out as status + JSON. */
  readonly acceptsJson: boolean;
  /** application/graphql-response+json is acceptable (Apollo Client reads coded errors from a 4xx only then). */
  readonly acceptsGraphqlResponse: boolean;
  /** Registers what ends the operation when the client goes away. */
  onClose(fn: () => Promise<void>): void;
}

const contentType = (x: StreamExchange) => (x.acceptsGraphqlResponse ? 'application/graphql-response+json; charset=utf-8' : 'application/json; charset=utf-8');

/** A refusal as [body, init] (graphql-sse's response shape): the contract's status, Retry-After on 429. */
export function refusalBody(r: Refusal, x: StreamExchange): [string, { status: number; statusText: string; headers: Record<string, string> }] {
  const headers: Record<string, string> = { 'content-type': contentType(x) };
  if (r.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  return [JSON.stringify({ errors: r.errors }), { status: r.status, statusText: STATUS_CODES[r.status] ?? '', headers }];
}

export function writeRefusal(res: express.Response, r: Refusal, x: StreamExchange): void {
  const [body, init] = refusalBody(r, x);
  res.writeHead(init.status, init.headers).end(body);
}

/**
 * Writes `chunks` as they come, plus `heartbeat` whenever `everyMs` passes with nothing written (proxies and
 * browsers drop connections that look idle). Waits for the socket to drain when it is behind. Stops when the client
 * goes away; either way the response ends.
 */
export async function pumpWithHeartbeat(res: express.Response, chunks: AsyncIterable<string>, heartbeat: string, everyMs: number): Promise<void> {
  res.flushHeaders();
  let last = Date.now();
  const beat = setInterval(
    () => {
      if (Date.now() - last >= everyMs - 5 && res.writable) {
        res.write(heartbeat);
        last = Date.now();
      }
    },
    Math.max(10, Math.floor(everyMs / 2)),
  );
  try {
    for await (const chunk of chunks) {
      if (!res.writable || res.destroyed) break;
      last = Date.now();
      if (!res.write(chunk)) {
        const gone = await new Promise<boolean>((resolve) => {
          const onDrain = () => (res.off('close', onClose), resolve(false));
          const onClose = () => (res.off('drain', onDrain), resolve(true));
          res.once('drain', onDrain);
          res.once('close', onClose);
        });
        if (gone) break;
      }
    }
  } finally {
    clearInterval(beat);
    if (!res.writableEnded) res.end();
  }
}
