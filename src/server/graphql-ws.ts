import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, execute, getOperationAST, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import { subscribeOnce } from '../graphql/subscription-execution';
import type { Logger } from '../infra/logger';
import type { ContextBuilder } from './context-builder';
import type { Metrics } from './metrics';
import { makeFormatError, toGraphQLError } from '../graphql/errors';
import { AppError } from '../errors';
import type { DocumentCache } from './document-cache';
import { upgradeAllowed, type OriginPolicy } from './cors';
import { makeOperationRecorder } from './operation-log';

/**
 * Per subscription id: its operation name, whether it started executing, whether its result was counted, and the
 * request's logger (request id and tenant id bound) once authenticated.
 */
type OpState = { name: string; started: boolean; counted: boolean; at: number; log: Logger | null };
type Extra = { abort?: AbortController; ops?: Map<string, OpState> };

/**
 * Close codes of a refused connection. 4401 is one the graphql-ws client does not retry (its default retries 4403
 * for half a minute), so a bad or missing key reaches the UI at once; 1013 (Try Again Later) is retried.
 */
export const WS_CLOSE = { badKey: 4401, unavailable: 1013 } as const;

/** Runs `fn` in the context a request's headers ask for (the W3C traceparent): see telemetry/tracing.ts. */
export type RequestContext = <T>(headers: IncomingHttpHeaders, fn: () => T) => T;

/**
 * graphql-ws on the HTTP server's port and path. A browser's Origin is checked at the upgrade (the CORS list, or
 * the page's own origin). The connection key is checked in onConnect (a bad or missing key closes with 4401) and
 * again on every subscribe, so a revoked key starts no new stream; documents are parsed only after that check.
 * Apollo's validation rules do not reach here, so the shared document cache applies graphql-armor's (and, in
 * production, refuses introspection and field suggestions as Apollo does on HTTP). At most
 * `subscriptionsPerConnection` operations run at once on one connection; more are RATE_LIMITED (limit SUBSCRIPTIONS).
 */
export interface GraphqlWsOptions {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  buildContext: ContextBuilder;
  documents: DocumentCache;
  origins: OriginPolicy;
  subscriptionsPerConnection: number;
  metrics: Metrics;
  logger: Logger;
  /** With tracing on: runs each operation under the trace context of the connection's upgrade request. */
  requestContext?: RequestContext;
}

export function attachGraphqlWs(opts: GraphqlWsOptions) {
  const wss = openSocketServer(opts);
  const formatError = makeFormatError(opts.logger);
  const record = makeOperationRecorder(opts.metrics);

  const upgrade = opts.requestContext ? new UpgradeContexts(opts.requestContext) : null;

  const cleanup = useServer<Record<string, unknown>, Extra & Record<PropertyKey, unknown>>(
    {
      schema: opts.schema,
      execute: upgrade ? (args) => upgrade.run(args.contextValue, () => execute(args)) : execute,
      subscribe: upgrade
        ? (args) => upgrade.run(args.contextValue, () => subscribeOnce(args)).then((r) => upgrade.eachStepIn(r, args.contextValue))
        : subscribeOnce,
      onConnect: async (ctx) => {
        try {
          ctx.extra.abort = new AbortController();
          ctx.extra.socket.once('close', () => ctx.extra.abort?.abort(new Error('socket closed')));
          await opts.buildContext({
            authorization: ctx.connectionParams?.authorization,
            signal: ctx.extra.abort.signal,
            clientAddress: ctx.extra.request.socket.remoteAddress,
          });
          return true;
        } catch (e) {
          refuseConnection(ctx.extra.socket, e);
          return false;
        }
      },
      onSubscribe: async (ctx, id, payload) => {
        const op: OpState = { name: payload.operationName ?? 'anonymous', started: false, counted: false, at: performance.now(), log: null };
        const ops = (ctx.extra.ops ??= new Map());
        ops.set(id, op);
        if (ops.size > opts.subscriptionsPerConnection) return [tooManyOperations(opts.subscriptionsPerConnection)];
        const conn = { authorization: ctx.connectionParams?.authorization, signal: ctx.extra.abort!.signal, request: ctx.extra.request };
        return prepareOperation(opts, conn, payload, op, upgrade);
      },
      onOperation: (ctx, id) => {
        const op = ctx.extra.ops?.get(id);
        if (op) op.started = true;
        opts.metrics.openStreams.inc();
      },
      onComplete: (ctx, id) => {
        opts.metrics.openStreams.dec();
        const op = ctx.extra.ops?.get(id);
        ctx.extra.ops?.delete(id);
        if (op && !op.counted) record({ name: op.name, log: op.log ?? opts.logger, transport: 'ws', startedAt: op.at });
      },
      onError: (ctx, id, _payload, errors) => {
        const out = errors.map((e) => formatted(formatError, e, false));
        count(ctx.extra, id, out);
        // Refused before it started (onSubscribe's errors): onComplete will not follow, so forget it now.
        if (!ctx.extra.ops?.get(id)?.started) ctx.extra.ops?.delete(id);
        return out;
      },
      onNext: (ctx, id, _payload, _args, result) => {
        if ('errors' in result && result.errors?.length) {
          const errors = result.errors.map((e) => formatted(formatError, e, true));
          count(ctx.extra, id, errors);
          return { ...result, errors };
        }
        return undefined;
      },
    },
    wss,
  );
  /** Counted and logged once per operation: its first error's code. */
  function count(extra: Extra, id: string, errors: readonly GraphQLError[]) {
    const op = extra.ops?.get(id);
    if (!op || op.counted) return;
    op.counted = true;
    record({ name: op.name, log: op.log ?? opts.logger, transport: 'ws', startedAt: op.at, errors });
  }

  return {
    wss,
    async dispose() {
      await cleanup.dispose();
    },
  };
}

function openSocketServer(opts: GraphqlWsOptions): WebSocketServer {
  return new WebSocketServer({
    server: opts.httpServer,
    path: opts.path,
    maxPayload: 1024 * 1024,
    // Compressing every small event costs more CPU (and zlib memory per connection) than the bytes it saves.
    perMessageDeflate: false,
    verifyClient: (info, done) => (upgradeAllowed(opts.origins, info.req) ? done(true) : done(false, 403, 'Origin not allowed; add it to CORS_ORIGINS')),
  });
}

/** An error as the client sees it (masked, coded); execution errors keep their path. */
function formatted(formatError: ReturnType<typeof makeFormatError>, e: GraphQLError, withPath: boolean): GraphQLError {
  const f = formatError(e.toJSON(), e);
  return new GraphQLError(f.message, { path: withPath ? e.path : undefined, extensions: f.extensions });
}

/**
 * With tracing on, operations run in the trace context of the connection's upgrade request: the headers are kept per
 * context value (weakly, so a finished operation's context is not held).
 */
class UpgradeContexts {
  private readonly headers = new WeakMap<object, IncomingHttpHeaders>();
  constructor(private readonly requestContext: RequestContext) {}

  remember(contextValue: object, headers: IncomingHttpHeaders): void {
    this.headers.set(contextValue, headers);
  }

  run<T>(contextValue: unknown, fn: () => T): T {
    const headers = this.headers.get(contextValue as object);
    return headers ? this.requestContext(headers, fn) : fn();
  }

  /** A subscription's resolvers run as graphql-ws pulls the stream, in graphql-ws's own context: pull each step in the request's instead. */
  eachStepIn<R>(result: R, contextValue: unknown): R {
    if (!result || typeof result !== 'object' || !(Symbol.asyncIterator in result)) return result;
    const it = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]() as AsyncIterator<unknown>;
    const step = (f: () => Promise<IteratorResult<unknown>>) => this.run(contextValue, f);
    const bound: AsyncIterableIterator<unknown> = {
      next: () => step(() => it.next()),
      return: (v?: unknown) => step(() => it.return?.(v) ?? Promise.resolve({ done: true as const, value: v })),
      throw: (e?: unknown) => step(() => it.throw?.(e) ?? Promise.reject(e)),
      [Symbol.asyncIterator]: () => bound,
    };
    return bound as R;
  }
}

/**
 * A refused connection: a bad or missing key closes with 4401, which graphql-ws clients do not retry. Anything else
 * (Postgres or Redis down, too many failed attempts) is not a bad key: 1013 Try Again Later, which they retry.
 * Closing first makes graphql-ws's own close (4403) a no-op.
 */
function refuseConnection(socket: WebSocket, e: unknown): void {
  const code = e instanceof GraphQLError ? e.extensions?.code : undefined;
  if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') socket.close(WS_CLOSE.badKey, closeReason(code, (e as GraphQLError).extensions.reason));
  else socket.close(WS_CLOSE.unavailable, `${typeof code === 'string' ? code : 'SERVICE_UNAVAILABLE'}: try again shortly`);
}

function tooManyOperations(limit: number): GraphQLError {
  return toGraphQLError(
    new AppError('RATE_LIMITED', `at most ${limit} operations may run at once on one connection; end one or open another connection`, {
      limit: 'SUBSCRIPTIONS',
      retryAfterMs: 1000,
    }),
  );
}

/**
 * A subscribe message checked again with the connection's key (a revoked key starts no new stream), then parsed and
 * validated through the shared document cache: the execution arguments, or the errors that refuse it.
 */
async function prepareOperation(
  opts: GraphqlWsOptions,
  conn: { authorization: unknown; signal: AbortSignal; request: IncomingMessage },
  payload: SubscribePayload,
  op: OpState,
  upgrade: UpgradeContexts | null,
): Promise<ExecutionArgs | readonly GraphQLError[]> {
  let contextValue;
  try {
    contextValue = await opts.buildContext({ authorization: conn.authorization, signal: conn.signal, clientAddress: conn.request.socket.remoteAddress });
  } catch (e) {
    return [e instanceof GraphQLError ? e : toGraphQLError(new AppError('INTERNAL_SERVER_ERROR', 'internal error'))];
  }
  op.log = contextValue.log;
  upgrade?.remember(contextValue, conn.request.headers);
  const checked = opts.documents.check(payload.query);
  if ('parseError' in checked) return [new GraphQLError(checked.parseError, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
  const { document, errors } = checked;
  op.name = getOperationAST(document, payload.operationName)?.name?.value ?? op.name;
  if (errors.length) return [...errors];
  return { schema: opts.schema, document, variableValues: payload.variables ?? undefined, operationName: payload.operationName ?? undefined, contextValue };
}

/** A close reason fits in 123 bytes: the code and a hint, never the key. */
function closeReason(code: string, reason: unknown): string {
  // A suspended tenant's key is valid: asking for another key would mislead.
  if (reason === 'SUSPENDED') return `${code}: SUSPENDED, this tenant is suspended; its keys work again once an admin resumes it`;
  return `${code}: send connectionParams { authorization: "Bearer <key>" } with a valid key`.slice(0, 123);
}
