import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { HeaderMap, type ApolloServer, type HTTPGraphQLResponse } from '@apollo/server';
import type { GraphQLContext } from '../graphql/context';
import type { ContextBuilder } from './context-builder';
import { applyCors, type OriginPolicy } from './cors';
import type { RequestContext } from './graphql-ws';
import { transportFor } from './http-streams';

/** The request id: the client's X-Request-Id when it is a plain token, else a new one; echoed on the response. */
export function requestIdFor(req: IncomingMessage, res: ServerResponse): string {
  const rid = req.headers['x-request-id'];
  const id = typeof rid === 'string' && /^[\w-]{1,64}$/.test(rid) ? rid : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

/** Apollo's context for one HTTP request: authenticated by buildContext, aborted when the client goes away. */
export function httpContext(buildContext: ContextBuilder, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<GraphQLContext> {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
  });
  return buildContext({ authorization: req.headers.authorization, signal: ac.signal, requestId, clientAddress: req.socket.remoteAddress });
}

/** Writes Apollo's answer as it is (status, headers, body). */
async function writeApolloResponse(res: ServerResponse, r: HTTPGraphQLResponse): Promise<void> {
  for (const [key, value] of r.headers) res.setHeader(key, value);
  res.statusCode = r.status ?? 200;
  if (r.body.kind === 'complete') {
    res.setHeader('Content-Length', Buffer.byteLength(r.body.string));
    res.end(r.body.string);
    return;
  }
  for await (const chunk of r.body.asyncIterator) res.write(chunk);
  res.end();
}

export interface GraphqlFastPathOptions {
  readonly apollo: ApolloServer<GraphQLContext>;
  readonly buildContext: ContextBuilder;
  readonly origins: OriginPolicy;
  readonly maxBodyBytes: number;
  readonly requestContext?: RequestContext;
}

/**
 * The common GraphQL request, a JSON POST to /graphql that no streaming transport claims, handled without express:
 * the same CORS policy, request id, body limit, trace context and context as express's /graphql stack, straight into
 * Apollo's executeHTTPGraphQLRequest. It saved a fifth of the server's CPU per request (BENCHMARKS.md, "Apollo HTTP
 * path (wave 3)"). Returns false for anything else (GET, preflight, SSE, multipart, another content type or
 * encoding, another path), which express serves as before.
 */
export function makeGraphqlFastPath(o: GraphqlFastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'POST' || !isGraphqlPath(req.url) || !isPlainJson(req) || transportFor(req.headers.accept) !== null) return false;
    applyCors(o.origins, req, res);
    const requestId = requestIdFor(req, res);
    readJsonBody(req, o.maxBodyBytes)
      .then(
        (body) => {
          if ('refusal' in body) return writeRefusal(res, body.refusal.status, body.refusal.code, body.refusal.message);
          const run = () => execute(o, req, res, requestId, body.value);
          return o.requestContext ? o.requestContext(req.headers, run) : run();
        },
        () => res.destroy(),
      )
      .catch(() => {
        if (!res.headersSent) writeRefusal(res, 500, 'INTERNAL_SERVER_ERROR', 'internal error');
        else res.destroy();
      });
    return true;
  };
}

async function execute(o: GraphqlFastPathOptions, req: IncomingMessage, res: ServerResponse, requestId: string, body: unknown): Promise<void> {
  const headers = new HeaderMap();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
  }
  const q = req.url!.indexOf('?');
  const response = await o.apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: { method: 'POST', headers, search: q < 0 ? '' : req.url!.slice(q), body },
    context: () => httpContext(o.buildContext, req, res, requestId),
  });
  await writeApolloResponse(res, response);
}

const isGraphqlPath = (url: string | undefined) => url === '/graphql' || (url !== undefined && url.startsWith('/graphql?'));

/** application/json in UTF-8 and not compressed: what express.json would read without help. */
function isPlainJson(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  if (type === undefined || !/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(type)) return false;
  const encoding = req.headers['content-encoding'];
  return encoding === undefined || encoding.toLowerCase() === 'identity';
}

type BodyResult = { value: unknown } | { refusal: { status: number; code: string; message: string } };

/** The body as express.json reads it (strict: an object or array; empty is {}), refused over `limit` bytes. */
function readJsonBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const tooLarge = { refusal: { status: 413, code: 'PAYLOAD_TOO_LARGE', message: `request body over ${limit} bytes` } };
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.resolve(tooLarge);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      // Answered now; the rest is read and dropped so the connection can serve the next request.
      req.off('data', onData);
      req.resume();
      resolve(tooLarge);
    };
    req.on('data', onData);
    req.once('error', reject);
    req.once('end', () => {
      if (size > limit) return;
      const text = Buffer.concat(chunks, size).toString('utf8');
      if (text.length === 0) return resolve({ value: {} });
      try {
        const value: unknown = JSON.parse(text);
        if (typeof value === 'object' && value !== null) return resolve({ value });
      } catch {
        // answered below
      }
      resolve({ refusal: { status: 400, code: 'BAD_REQUEST', message: 'request body is not valid JSON' } });
    });
  });
}

/** The same coded JSON refusals express's /graphql stack answers (413 over the limit, 400 for a malformed body). */
export function writeRefusal(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
