import type express from 'express';
import type { FormattedExecutionResult } from 'graphql';
import type { Prepared, StreamOperations } from './stream-operation';
import { STREAM_HEADERS, pumpWithHeartbeat, writeRefusal, type StreamExchange } from './stream-response';

const BOUNDARY = 'graphql';
const part = (json: unknown) => `\r\n--${BOUNDARY}\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${JSON.stringify(json)}`;
/** The protocol's heartbeat: an empty JSON object, which clients skip. */
const HEARTBEAT = part({});
const END = `\r\n--${BOUNDARY}--\r\n`;

/**
 * Apollo's multipart subscription protocol (`Accept: multipart/mixed;subscriptionSpec="1.0"`, what Apollo Client's
 * HttpLink sends for a subscription): one multipart/mixed response, each event a part `{"payload": result}`,
 * heartbeats `{}`, the closing boundary at the end. Errors during the stream are a payload with `errors`, then the
 * end. A refusal before the first event is the contract's status with a JSON body (Apollo Client reads it as
 * GraphQL errors when it is application/graphql-response+json, which it accepts).
 */
export function makeMultipartTransport(ops: StreamOperations, heartbeatMs: number) {
  return async function serveMultipart(_req: express.Request, res: express.Response, prepared: Prepared, exchange: StreamExchange): Promise<void> {
    const out = await ops.run(prepared);
    if (out.kind === 'refused' && exchange.acceptsJson) return writeRefusal(res, out, exchange);
    let results: AsyncGenerator<FormattedExecutionResult>;
    if (out.kind === 'stream') {
      exchange.onClose(out.close);
      results = out.results;
    } else {
      // A query sent this way, or a refusal for a client that takes only multipart: one payload, then the end.
      results = one(out.kind === 'single' ? out.result : { errors: out.errors });
    }
    res.writeHead(200, { ...STREAM_HEADERS, 'content-type': `multipart/mixed;boundary="${BOUNDARY}";subscriptionSpec="1.0"` });
    await pumpWithHeartbeat(res, frames(results), HEARTBEAT, heartbeatMs);
  };
}

async function* one(r: FormattedExecutionResult): AsyncGenerator<FormattedExecutionResult> {
  yield r;
}

async function* frames(results: AsyncGenerator<FormattedExecutionResult>): AsyncGenerator<string> {
  try {
    for await (const r of results) yield part({ payload: r });
    yield END;
  } finally {
    await results.return(undefined);
  }
}
