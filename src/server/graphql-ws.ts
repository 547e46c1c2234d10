import type { Server } from 'node:http';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, execute, parse, specifiedRules, subscribe, validate, type GraphQLSchema, type ValidationRule } from 'graphql';
import type { Logger } from '../infra/logger';
import type { ContextBuilder } from './context-builder';
import type { Metrics } from './metrics';
import { makeFormatError } from '../graphql/errors';

type Extra = { abort?: AbortController };

/**
 * graphql-ws on the HTTP server's port and path. The connection key is checked in onConnect (a bad key closes
 * with 4403) and again on every subscribe, so a revoked key starts no new stream. Apollo's validation rules do not
 * reach here, so graphql-armor's rules are applied in onSubscribe.
 */
export function attachGraphqlWs(opts: { httpServer: Server; path: string; schema: GraphQLSchema; buildContext: ContextBuilder; validationRules: ValidationRule[]; metrics: Metrics; logger: Logger }) {
  const wss = new WebSocketServer({ server: opts.httpServer, path: opts.path, maxPayload: 1024 * 1024 });
  const formatError = makeFormatError(opts.logger);
  const rules = [...specifiedRules, ...opts.validationRules];

  const cleanup = useServer<Record<string, unknown>, Extra & Record<PropertyKey, unknown>>(
    {
      schema: opts.schema,
      execute,
      subscribe,
      onConnect: async (ctx) => {
        try {
          ctx.extra.abort = new AbortController();
          ctx.extra.socket.once('close', () => ctx.extra.abort?.abort(new Error('socket closed')));
          await opts.buildContext({ authorization: ctx.connectionParams?.authorization, signal: ctx.extra.abort.signal });
          return true;
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        let document;
        try {
          document = parse(payload.query, { maxTokens: 2000 });
        } catch (e) {
          return [new GraphQLError((e as Error).message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
        }
        const errors = validate(opts.schema, document, rules);
        if (errors.length) return errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED', ...e.extensions } }));
        try {
          const contextValue = await opts.buildContext({ authorization: ctx.connectionParams?.authorization, signal: ctx.extra.abort!.signal });
          return { schema: opts.schema, document, variableValues: payload.variables ?? undefined, operationName: payload.operationName ?? undefined, contextValue };
        } catch (e) {
          return [e instanceof GraphQLError ? e : new GraphQLError('internal error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
        }
      },
      onOperation: () => {
        opts.metrics.openStreams.inc();
      },
      onComplete: () => {
        opts.metrics.openStreams.dec();
      },
      onError: (_ctx, _id, _payload, errors) =>
        errors.map((e) => {
          const f = formatError(e.toJSON(), e);
          return new GraphQLError(f.message, { extensions: f.extensions });
        }),
      onNext: (_ctx, _id, _payload, _args, result) => {
        if ('errors' in result && result.errors?.length) {
          return {
            ...result,
            errors: result.errors.map((e) => {
              const f = formatError(e.toJSON(), e);
              return new GraphQLError(f.message, { path: e.path, extensions: f.extensions });
            }),
          };
        }
        return undefined;
      },
    },
    wss,
  );
  return {
    wss,
    async dispose() {
      await cleanup.dispose();
    },
  };
}
