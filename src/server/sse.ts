import type express from 'express';
import { createHandler, type Request as SseRequest } from 'graphql-sse';
import type { ExecutionResult } from 'graphql';
import type { Prepared, StreamOperations } from './stream-operation';
import { STREAM_HEADERS, pumpWithHeartbeat, refusalBody, type StreamExchange } from './stream-response';

type SseContext = { readonly prepared: Prepared; readonly exchange: StreamExchange };

/**
 * GraphQL over Server-Sent Events (the graphql-sse protocol, distinct-connections mode: one operation per request)
 * through graphql-sse's own handler. The operation was authenticated and its document checked before we get here
 * (stream-operation.ts); the handler frames the results (`next` events, then `complete`).
 *
 * A refusal before the first event: the contract's HTTP status with a JSON body when the request accepts JSON;
 * otherwise (graphql-sse's client accepts only text/event-stream, and retries any non-2xx answer as a network error
 * for half a minute) a `next` event carrying the coded errors, then `complete`, as graphql-sse itself does for
 * validation errors.
 */
export function makeSseTransport(ops: StreamOperations, heartbeatMs: number) {
  const handler = createHandler<express.Request, SseContext>({
    // The operation is run in onSubscribe, so the handler never needs its own schema, parse or validate.
    onSubscribe: async (req) => {
      const { prepared, exchange } = req.context;
      const out = await ops.run(prepared);
      if (out.kind === 'refused') {
        if (exchange.acceptsJson) return refusalBody(out, exchange);
        return { data: null, errors: out.errors } as unknown as ExecutionResult;
      }
      if (out.kind === 'single') return out.result as ExecutionResult;
      exchange.onClose(out.close);
      return out.results as AsyncGenerator<ExecutionResult>;
    },
  });

  return async function serveSse(req: express.Request, res: express.Response, prepared: Prepared, exchange: StreamExchange): Promise<void> {
    const request: SseRequest<express.Request, SseContext> = {
      method: req.method,
      url: req.originalUrl,
      headers: {
        // The transport is chosen already (the Accept header may list JSON types too, as urql's does).
        get: (key: string) => (key === 'accept' ? 'text/event-stream' : (req.headers[key] as string | undefined)),
      },
      body: (req.body as Record<string, unknown> | undefined) ?? null,
      raw: req,
      context: { prepared, exchange },
    };
    const [body, init] = await handler(request);
    if (!body || typeof body === 'string') {
      res.writeHead(init.status, init.statusText, init.headers as Record<string, string>).end(body ?? undefined);
      return;
    }
    const { 'content-encoding': _none, ...headers } = init.headers ?? {};
    res.writeHead(init.status, { ...headers, ...STREAM_HEADERS });
    await pumpWithHeartbeat(res, body, ':\n\n', heartbeatMs);
  };
}
