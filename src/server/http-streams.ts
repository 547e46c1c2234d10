import type express from 'express';
import { print as printSse } from 'graphql-sse';
import type { GraphQLContext } from '../graphql/context';
import { makeMultipartTransport } from './multipart';
import { makeSseTransport } from './sse';
import type { StreamOperations } from './stream-operation';
import { STREAM_HEADERS, writeRefusal, type StreamExchange } from './stream-response';

export type HttpStreamTransport = 'sse' | 'multipart';

/** The transports that serve a subscription, as the 400 for a subscription posted without them names them. */
export const SUBSCRIPTION_TRANSPORTS = [
  { transport: 'graphql-ws', how: 'a WebSocket upgrade on /graphql (subprotocol graphql-transport-ws)' },
  { transport: 'sse', how: 'Accept: text/event-stream (GraphQL over SSE, distinct connections)' },
  { transport: 'multipart', how: 'Accept: multipart/mixed;subscriptionSpec="1.0" (Apollo multipart subscriptions)' },
] as const;

/** text/event-stream anywhere in Accept: SSE; else multipart/mixed with subscriptionSpec: multipart; else neither. */
export function transportFor(accept: string | undefined): HttpStreamTransport | null {
  if (!accept) return null;
  const types = accept
    .toLowerCase()
    .split(',')
    .map((t) => t.trim());
  if (types.some((t) => t.startsWith('text/event-stream'))) return 'sse';
  if (types.some((t) => t.startsWith('multipart/mixed') && t.includes('subscriptionspec'))) return 'multipart';
  return null;
}

const acceptsType = (accept: string, re: RegExp) =>
  accept
    .toLowerCase()
    .split(',')
    .some((t) => re.test(t.trim().split(';')[0]!.trim()));

/** Where Apollo's context function finds a context this middleware already built (no second authentication). */
export const PREBUILT_CONTEXT = 'gatewayContext';

/**
 * Picks the transport of a GraphQL request on /graphql from its Accept header. A request that can stream
 * (SSE or multipart) is authenticated and its document checked here; a subscription is then streamed, and a query or
 * mutation goes on to Apollo with its context (it answers JSON whenever the client accepts JSON, whatever else Accept
 * lists, as urql's does). A client that accepts only text/event-stream (graphql-sse's) gets its query over SSE.
 * Requests that cannot stream go straight to Apollo, which refuses a subscription with a coded 400.
 */
export function makeHttpStreams(o: { ops: StreamOperations; heartbeatMs: number }): express.RequestHandler {
  const transports = { sse: makeSseTransport(o.ops, o.heartbeatMs), multipart: makeMultipartTransport(o.ops, o.heartbeatMs) };
  return async (req, res, next) => {
    const accept = req.headers.accept ?? '';
    const transport = req.method === 'GET' || req.method === 'POST' ? transportFor(accept) : null;
    if (!transport) return next();
    const exchange = makeExchange(res, accept);
    const params = paramsOf(req);
    if ('error' in params)
      return writeRefusal(
        res,
        { kind: 'refused', status: 400, errors: [{ message: params.error, extensions: { code: 'BAD_REQUEST' } }] },
        { ...exchange, acceptsJson: true },
      );
    try {
      const prepared = await o.ops.prepare({
        ...params,
        authorization: req.headers.authorization,
        requestId: res.locals.requestId as string,
        clientAddress: req.socket.remoteAddress,
        signal: exchange.signal,
        transport,
      });
      if (prepared.kind === 'refused') {
        if (exchange.acceptsJson) return writeRefusal(res, prepared, exchange);
        return writeProtocolError(res, transport, prepared.errors);
      }
      const kind = prepared.operation.operation;
      if (kind === 'mutation' && req.method === 'GET') {
        return writeRefusal(
          res,
          { kind: 'refused', status: 405, errors: [{ message: 'a mutation needs POST', extensions: { code: 'BAD_REQUEST' } }] },
          exchange,
        );
      }
      if (kind !== 'subscription' && exchange.acceptsJson) {
        (res.locals as Record<string, GraphQLContext>)[PREBUILT_CONTEXT] = prepared.context;
        return next();
      }
      await transports[transport](req, res, prepared, exchange);
    } catch (e) {
      if (res.headersSent) {
        res.destroy(e as Error);
        return;
      }
      next(e);
    }
  };
}

function makeExchange(res: express.Response, accept: string): StreamExchange & { signal: AbortSignal } {
  const ac = new AbortController();
  const closers: Array<() => Promise<void>> = [];
  let gone = false;
  // The client went away before the response ended: stop the upstream (the chat use case settles CLIENT_CANCELLED
  // for what was delivered) and end the operation.
  res.once('close', () => {
    if (res.writableFinished) return;
    gone = true;
    ac.abort(new Error('client closed the connection'));
    for (const close of closers) void close().catch(() => undefined);
  });
  return {
    signal: ac.signal,
    acceptsJson: acceptsType(accept, /^(application\/json|application\/graphql-response\+json|application\/\*|\*\/\*)$/),
    acceptsGraphqlResponse: acceptsType(accept, /^application\/graphql-response\+json$/),
    // A client that left while the first event was awaited: end the operation at once.
    onClose: (fn) => (gone ? void fn().catch(() => undefined) : void closers.push(fn)),
  };
}

/** query, variables and operationName from a POST body or a GET query string (variables as JSON there). */
function paramsOf(req: express.Request): { query: unknown; variables: unknown; operationName: unknown } | { error: string } {
  if (req.method === 'POST') {
    const b = req.body as Record<string, unknown> | undefined;
    if (!b || typeof b !== 'object') return { error: 'POST a JSON body ({"query": ..., "variables": ...}) with content-type: application/json' };
    return { query: b.query, variables: b.variables, operationName: b.operationName };
  }
  const q = req.query as Record<string, unknown>;
  let variables: unknown = undefined;
  if (typeof q.variables === 'string' && q.variables) {
    try {
      variables = JSON.parse(q.variables);
    } catch {
      return { error: 'the "variables" query parameter must be JSON' };
    }
  }
  return { query: q.query, variables, operationName: q.operationName };
}

/** A refusal for a client that accepts no JSON: the transport's own way of carrying errors, then the end. */
function writeProtocolError(res: express.Response, transport: HttpStreamTransport, errors: readonly unknown[]): void {
  if (transport === 'sse') {
    res.writeHead(200, { ...STREAM_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
    res.end(printSse({ event: 'next', data: { data: null, errors } as never }) + printSse({ event: 'complete', data: null }));
    return;
  }
  res.writeHead(200, { ...STREAM_HEADERS, 'content-type': 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"' });
  res.end(`\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${JSON.stringify({ payload: { data: null, errors } })}\r\n--graphql--\r\n`);
}
