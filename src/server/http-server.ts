import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler } from 'express';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { Logger } from '../infra/logger';
import type { GraphQLContext } from '../graphql/context';
import { makeFormatError, statusFor } from '../graphql/errors';
import type { ContextBuilder } from './context-builder';
import type { Metrics } from './metrics';
import { attachGraphqlWs, type RequestContext } from './graphql-ws';
import { makeDocumentCache, MAX_DOCUMENT_TOKENS } from './document-cache';
import { corsMiddleware, makeOriginPolicy } from './cors';
import { makeStreamOperations } from './stream-operation';
import { makeHttpStreams, PREBUILT_CONTEXT, SUBSCRIPTION_TRANSPORTS } from './http-streams';

export interface HttpServerOptions {
  readonly schema: GraphQLSchema;
  readonly buildContext: ContextBuilder;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly production: boolean;
  readonly maxBodyBytes: number;
  /** GET /readyz: resolves when Postgres and Redis answer, rejects with the reason otherwise. */
  readonly ready: () => Promise<void>;
  /** Extra routes mounted before /graphql (the playground). */
  readonly mount?: (app: express.Express) => void;
  /** Browser origins allowed (CORS and the WebSocket upgrade); null: any localhost origin. */
  readonly corsOrigins: readonly string[] | null;
  /** Most operations at once on one graphql-ws connection. */
  readonly subscriptionsPerConnection: number;
  /** Longest silence on an SSE or multipart stream before a heartbeat is sent. */
  readonly streamHeartbeatMs: number;
  /** Runs each GraphQL request (HTTP, graphql-ws) under its headers' trace context; unset when tracing is off. */
  readonly requestContext?: RequestContext;
}

/** A subscription over plain JSON HTTP cannot stream: a coded 400 naming the transports that can. */
const subscriptionTransportPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ operation }) {
        if (operation?.operation !== 'subscription') return;
        throw new GraphQLError(`a subscription needs a streaming transport: ${SUBSCRIPTION_TRANSPORTS.map((t) => `${t.transport} (${t.how})`).join('; ')}`, {
          extensions: { code: 'BAD_REQUEST', transports: SUBSCRIPTION_TRANSPORTS.map((t) => t.transport), http: { status: 400 } },
        });
      },
    };
  },
};

/** Sets the contract's HTTP status (401, 403, 413, 429, 503) from the response's error codes. */
const statusPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        if (response.body.kind !== 'single') return;
        const errors = response.body.singleResult.errors;
        if (!errors?.length) return;
        const s = statusFor(errors as never);
        if (s) response.http.status = s;
        // Retry-After on 429 (exposed to pages on other origins), from the error's retryAfterMs.
        const retry = errors.find((e) => typeof e.extensions?.retryAfterMs === 'number')?.extensions?.retryAfterMs as number | undefined;
        if (s === 429 && retry !== undefined) response.http.headers.set('retry-after', String(Math.max(1, Math.ceil(retry / 1000))));
      },
    };
  },
};

export function makeMetricsPlugin(metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response, operationName }) {
          if (response.body.kind !== 'single') return;
          const code = (response.body.singleResult.errors?.[0]?.extensions?.code as string | undefined) ?? 'OK';
          metrics.operations.inc({ operation: metrics.operationLabel(operationName), code });
        },
      };
    },
  };
}

/**
 * One structured log line per HTTP operation, through the context's logger (request id and tenant id bound), with
 * the errorIds of masked errors so a client's report finds the logged cause. Never variables or results: no
 * prompts, completions or keys.
 */
export const requestLogPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart({ contextValue }) {
    const started = performance.now();
    return {
      async willSendResponse({ response, operationName }) {
        if (response.body.kind !== 'single') return;
        const errors = response.body.singleResult.errors ?? [];
        const errorIds = errors.map((e) => e.extensions?.errorId).filter((id): id is string => typeof id === 'string');
        const entry = { operation: operationName ?? 'anonymous', code: (errors[0]?.extensions?.code as string | undefined) ?? 'OK', ms: Math.round(performance.now() - started) };
        if (errorIds.length) contextValue.log.error({ ...entry, errorIds }, 'graphql operation failed with an internal error');
        else contextValue.log.info(entry, 'graphql operation');
      },
    };
  },
};

/** Express + Apollo Server at /graphql, graphql-ws on the same path, health and metrics. One HTTP server. */
export async function createHttpServer(o: HttpServerOptions) {
  const app = express();
  app.disable('x-powered-by');
  const httpServer = http.createServer(app);
  httpServer.keepAliveTimeout = 65_000;

  const armor = new ApolloArmor({
    maxDepth: { n: 12 },
    maxAliases: { n: 15 },
    costLimit: { maxCost: 5000 },
    // Not armor's token plugin: it throws from parsingDidStart, which Apollo answers with HTTP 500. graphql-js's own
    // parser limit (parseOptions below, the same as graphql-ws uses) answers GRAPHQL_PARSE_FAILED with 400.
    maxTokens: { enabled: false },
    maxDirectives: { n: 20 },
    blockFieldSuggestion: { enabled: o.production },
  }).protect();

  const documents = makeDocumentCache({ schema: o.schema, validationRules: armor.validationRules, production: o.production });
  const origins = makeOriginPolicy(o.corsOrigins);
  const ws = attachGraphqlWs({
    httpServer,
    path: '/graphql',
    schema: o.schema,
    buildContext: o.buildContext,
    documents,
    origins,
    subscriptionsPerConnection: o.subscriptionsPerConnection,
    metrics: o.metrics,
    logger: o.logger,
    requestContext: o.requestContext,
  });
  const streams = makeHttpStreams({
    ops: makeStreamOperations({ schema: o.schema, buildContext: o.buildContext, documents, formatError: makeFormatError(o.logger), metrics: o.metrics, logger: o.logger }),
    heartbeatMs: o.streamHeartbeatMs,
  });

  const apollo = new ApolloServer<GraphQLContext>({
    // main.ts owns SIGTERM/SIGINT (drain everything, then exit); Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
    schema: o.schema,
    introspection: !o.production,
    // A request carrying Authorization passes: a browser sends that header cross-site only after a preflight, and
    // this API authenticates by it alone, so urql's plain GET queries work with its defaults.
    csrfPrevention: { requestHeaders: ['authorization', 'x-apollo-operation-name', 'apollo-require-preflight'] },
    parseOptions: { maxTokens: MAX_DOCUMENT_TOKENS },
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    validationRules: armor.validationRules,
    formatError: makeFormatError(o.logger),
    plugins: [
      ...armor.plugins,
      ApolloServerPluginDrainHttpServer({ httpServer }),
      { async serverWillStart() { return { async drainServer() { await ws.dispose(); } }; } },
      ApolloServerPluginLandingPageDisabled(),
      subscriptionTransportPlugin,
      statusPlugin,
      makeMetricsPlugin(o.metrics),
      requestLogPlugin,
    ],
  });
  await apollo.start();

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/readyz', async (_req, res) => {
    try {
      await o.ready();
      res.json({ status: 'ready' });
    } catch (e) {
      res.status(503).json({ status: 'unavailable', reason: (e as Error).message });
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(o.metrics.registry.contentType).send(await o.metrics.registry.metrics());
  });
  o.mount?.(app);

  const tooLarge: ErrorRequestHandler = (err, _req, res, next) => {
    if ((err as { type?: string }).type === 'entity.too.large') {
      res.status(413).json({ errors: [{ message: `request body over ${o.maxBodyBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
      return;
    }
    if ((err as { type?: string }).type === 'entity.parse.failed') {
      res.status(400).json({ errors: [{ message: 'request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
      return;
    }
    next(err);
  };

  // The request id: the client's X-Request-Id when it is a plain token, else a new one; echoed on the response.
  const requestId: express.RequestHandler = (req, res, next) => {
    const rid = req.headers['x-request-id'];
    const id = typeof rid === 'string' && /^[\w-]{1,64}$/.test(rid) ? rid : randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    next();
  };

  app.use(
    '/graphql',
    corsMiddleware(origins),
    requestId,
    express.json({ limit: o.maxBodyBytes }),
    tooLarge,
    // After the body parser (its stream callbacks would not carry the context along), before every transport.
    ...(o.requestContext ? [(req: express.Request, _res: express.Response, next: express.NextFunction) => o.requestContext!(req.headers, next)] : []),
    streams,
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const prebuilt = (res.locals as Record<string, GraphQLContext | undefined>)[PREBUILT_CONTEXT];
        if (prebuilt) return prebuilt;
        const ac = new AbortController();
        res.once('close', () => {
          if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
        });
        return o.buildContext({ authorization: req.headers.authorization, signal: ac.signal, requestId: res.locals.requestId as string, clientAddress: req.socket.remoteAddress });
      },
    }),
  );

  return {
    httpServer,
    app,
    async listen(port: number, host = '0.0.0.0'): Promise<number> {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => resolve());
      });
      const addr = httpServer.address();
      return typeof addr === 'object' && addr ? addr.port : port;
    },
    /** Stops accepting, drains HTTP requests and graphql-ws subscriptions, then closes. */
    async stop() {
      await apollo.stop();
    },
  };
}
