import type { IncomingHttpHeaders, Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type DocumentNode, NoSchemaIntrospectionCustomRule, execute, getOperationAST, parse, specifiedRules, subscribe, validate, type GraphQLSchema, type ValidationRule } from 'graphql';
import type { Logger } from '../infra/logger';
import type { ContextBuilder } from './context-builder';
import type { Metrics } from './metrics';
import { makeFormatError } from '../graphql/errors';

/**
 * Per subscription id: its operation name, whether it started executing, whether its result was counted, and the
 * request's logger (request id and tenant id bound) once authenticated.
 */
type OpState = { name: string; started: boolean; counted: boolean; at: number; log: Logger | null };
type Extra = { abort?: AbortController; ops?: Map<string, OpState> };

/** Runs `fn` in the context a request's headers ask for (the W3C traceparent): see telemetry/tracing.ts. */
export type RequestContext = <T>(headers: IncomingHttpHeaders, fn: () => T) => T;

/** Most lexical tokens a document may have, on HTTP and graphql-ws alike. */
export const MAX_DOCUMENT_TOKENS = 2000;

/**
 * graphql-ws on the HTTP server's port and path. The connection key is checked in onConnect (a bad key closes
 * with 4403) and again on every subscribe, so a revoked key starts no new stream. Apollo's validation rules do not
 * reach here, so graphql-armor's rules are applied in onSubscribe, and in production introspection and field
 * suggestions are refused here as Apollo refuses them on HTTP.
 */
export function attachGraphqlWs(opts: { httpServer: Server; path: string; schema: GraphQLSchema; buildContext: ContextBuilder; validationRules: ValidationRule[]; metrics: Metrics; logger: Logger; production: boolean; requestContext?: RequestContext }) {
  const wss = new WebSocketServer({ server: opts.httpServer, path: opts.path, maxPayload: 1024 * 1024 });
  const formatError = makeFormatError(opts.logger);
  const rules = [...specifiedRules, ...opts.validationRules, ...(opts.production ? [NoSchemaIntrospectionCustomRule] : [])];

  // Parsed and validated documents by query text, as Apollo's document store does on HTTP: a frontend subscribes
  // with the same few documents over and over, and validation (armor's cost and depth rules included) is not free.
  const documents = new Map<string, { document: DocumentNode; errors: readonly GraphQLError[] }>();
  const checkDocument = (query: string): { document: DocumentNode; errors: readonly GraphQLError[] } | { parseError: string } => {
    const hit = documents.get(query);
    if (hit) return hit;
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: MAX_DOCUMENT_TOKENS });
    } catch (e) {
      return { parseError: (e as Error).message };
    }
    const entry = { document, errors: validate(opts.schema, document, rules, { hideSuggestions: opts.production }) };
    if (documents.size >= 1_000) documents.clear();
    documents.set(query, entry);
    return entry;
  };

  const upgradeHeaders = new WeakMap<object, IncomingHttpHeaders>();
  const inUpgradeContext = <T>(contextValue: unknown, fn: () => T): T => {
    const headers = upgradeHeaders.get(contextValue as object);
    return headers ? opts.requestContext!(headers, fn) : fn();
  };
  // A subscription's resolvers run as graphql-ws pulls the stream, in graphql-ws's own context: pull each step in
  // the request's instead.
  const eachStepIn = <R,>(result: R, contextValue: unknown): R => {
    if (!result || typeof result !== 'object' || !(Symbol.asyncIterator in result)) return result;
    const it = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]() as AsyncIterator<unknown>;
    const step = (f: () => Promise<IteratorResult<unknown>>) => inUpgradeContext(contextValue, f);
    const bound: AsyncIterableIterator<unknown> = {
      next: () => step(() => it.next()),
      return: (v?: unknown) => step(() => it.return?.(v) ?? Promise.resolve({ done: true as const, value: v })),
      throw: (e?: unknown) => step(() => it.throw?.(e) ?? Promise.reject(e)),
      [Symbol.asyncIterator]: () => bound,
    };
    return bound as R;
  };
  const cleanup = useServer<Record<string, unknown>, Extra & Record<PropertyKey, unknown>>(
    {
      schema: opts.schema,
      // With tracing on, operations run under the trace context of the connection's upgrade request.
      execute: opts.requestContext ? (args) => inUpgradeContext(args.contextValue, () => execute(args)) : execute,
      subscribe: opts.requestContext ? (args) => inUpgradeContext(args.contextValue, () => subscribe(args)).then((r) => eachStepIn(r, args.contextValue)) : subscribe,
      onConnect: async (ctx) => {
        try {
          ctx.extra.abort = new AbortController();
          ctx.extra.socket.once('close', () => ctx.extra.abort?.abort(new Error('socket closed')));
          await opts.buildContext({ authorization: ctx.connectionParams?.authorization, signal: ctx.extra.abort.signal });
          return true;
        } catch (e) {
          // Postgres or Redis down is not a bad key: close with 1013 Try Again Later (graphql-ws clients retry it)
          // rather than 4403, which tells a client to drop its key. Closing first makes graphql-ws's own close a no-op.
          if (e instanceof GraphQLError && e.extensions?.code === 'SERVICE_UNAVAILABLE') ctx.extra.socket.close(1013, 'service unavailable; try again shortly');
          return false; // graphql-ws closes with 4403 Forbidden
        }
      },
      onSubscribe: async (ctx, id, payload) => {
        const op: OpState = { name: payload.operationName ?? 'anonymous', started: false, counted: false, at: performance.now(), log: null };
        (ctx.extra.ops ??= new Map()).set(id, op);
        const checked = checkDocument(payload.query);
        if ('parseError' in checked) return [new GraphQLError(checked.parseError, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
        const { document, errors } = checked;
        op.name = getOperationAST(document, payload.operationName)?.name?.value ?? op.name;
        // The same code as Apollo gives these on HTTP (graphql-armor reports its own as BAD_USER_INPUT).
        if (errors.length) return errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }));
        try {
          const contextValue = await opts.buildContext({ authorization: ctx.connectionParams?.authorization, signal: ctx.extra.abort!.signal });
          op.log = contextValue.log;
          if (opts.requestContext) upgradeHeaders.set(contextValue, ctx.extra.request.headers);
          return { schema: opts.schema, document, variableValues: payload.variables ?? undefined, operationName: payload.operationName ?? undefined, contextValue };
        } catch (e) {
          return [e instanceof GraphQLError ? e : new GraphQLError('internal error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
        }
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
        if (op && !op.counted) {
          opts.metrics.operations.inc({ operation: opts.metrics.operationLabel(op.name), code: 'OK' });
          (op.log ?? opts.logger).info({ operation: op.name, code: 'OK', ms: Math.round(performance.now() - op.at), transport: 'ws' }, 'graphql operation');
        }
      },
      onError: (ctx, id, _payload, errors) => {
        const out = errors.map((e) => {
          const f = formatError(e.toJSON(), e);
          return new GraphQLError(f.message, { extensions: f.extensions });
        });
        count(ctx.extra, id, out);
        // Refused before it started (onSubscribe's errors): onComplete will not follow, so forget it now.
        if (!ctx.extra.ops?.get(id)?.started) ctx.extra.ops?.delete(id);
        return out;
      },
      onNext: (ctx, id, _payload, _args, result) => {
        if ('errors' in result && result.errors?.length) {
          const errors = result.errors.map((e) => {
            const f = formatError(e.toJSON(), e);
            return new GraphQLError(f.message, { path: e.path, extensions: f.extensions });
          });
          count(ctx.extra, id, errors);
          return { ...result, errors };
        }
        return undefined;
      },
    },
    wss,
  );
  /** gateway_graphql_operations_total and the log line, as on HTTP: once per operation, its first error's code or OK. */
  function count(extra: Extra, id: string, errors: readonly GraphQLError[]) {
    const op = extra.ops?.get(id);
    if (!op || op.counted) return;
    op.counted = true;
    const c = errors[0]?.extensions?.code;
    const code = typeof c === 'string' ? c : 'INTERNAL_SERVER_ERROR';
    opts.metrics.operations.inc({ operation: opts.metrics.operationLabel(op.name), code });
    const errorIds = errors.map((e) => e.extensions?.errorId).filter((x): x is string => typeof x === 'string');
    const entry = { operation: op.name, code, ms: Math.round(performance.now() - op.at), transport: 'ws' };
    if (errorIds.length) (op.log ?? opts.logger).error({ ...entry, errorIds }, 'graphql operation failed with an internal error');
    else (op.log ?? opts.logger).info(entry, 'graphql operation');
  }

  return {
    wss,
    async dispose() {
      await cleanup.dispose();
    },
  };
}
