import http from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { GraphQLSchema } from 'graphql';
import type { Logger } from '../infra/logger';
import type { GraphQLContext } from '../graphql/context';
import { makeFormatError } from '../graphql/errors';
import type { ContextBuilder } from './context-builder';
import type { Metrics } from './metrics';
import { attachGraphqlWs, type RequestContext } from './graphql-ws';
import { makeDocumentCache, MAX_DOCUMENT_TOKENS, type DocumentCache } from './document-cache';
import { corsMiddleware, makeOriginPolicy, type OriginPolicy } from './cors';
import { makeStreamOperations } from './stream-operation';
import { makeHttpStreams, PREBUILT_CONTEXT } from './http-streams';
import { makeResponsePlugin, subscriptionTransportPlugin } from './apollo-plugins';
import { httpContext, makeGraphqlFastPath, requestIdFor, writeRefusal } from './graphql-http';

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

/**
 * Apollo Server at /graphql (JSON POSTs straight from node:http, the rest through express), graphql-ws on the same
 * path, SSE and multipart, health and metrics. One HTTP server.
 */
export async function createHttpServer(o: HttpServerOptions) {
  const app = express();
  app.disable('x-powered-by');
  let fastPath: ((req: http.IncomingMessage, res: http.ServerResponse) => boolean) | null = null;
  const httpServer = http.createServer((req, res) => {
    if (!fastPath?.(req, res)) app(req, res);
  });
  httpServer.keepAliveTimeout = 65_000;

  const armor = makeArmor(o.production);
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
  const apollo = makeApollo(o, armor, httpServer, () => ws.dispose());
  await apollo.start();
  fastPath = makeGraphqlFastPath({ apollo, buildContext: o.buildContext, origins, maxBodyBytes: o.maxBodyBytes, requestContext: o.requestContext });

  mountHealth(app, o);
  o.mount?.(app);
  app.use('/graphql', ...graphqlExpressStack(o, apollo, origins, documents));

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

function makeArmor(production: boolean) {
  return new ApolloArmor({
    maxDepth: { n: 12 },
    maxAliases: { n: 15 },
    costLimit: { maxCost: 5000 },
    // Not armor's token plugin: it throws from parsingDidStart, which Apollo answers with HTTP 500. graphql-js's own
    // parser limit (parseOptions below, the same as graphql-ws uses) answers GRAPHQL_PARSE_FAILED with 400.
    maxTokens: { enabled: false },
    maxDirectives: { n: 20 },
    blockFieldSuggestion: { enabled: production },
  }).protect();
}

function makeApollo(o: HttpServerOptions, armor: ReturnType<typeof makeArmor>, httpServer: http.Server, disposeWs: () => Promise<void>) {
  return new ApolloServer<GraphQLContext>({
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
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await disposeWs();
            },
          };
        },
      },
      ApolloServerPluginLandingPageDisabled(),
      subscriptionTransportPlugin,
      makeResponsePlugin(o.metrics),
    ],
  });
}

function mountHealth(app: express.Express, o: HttpServerOptions): void {
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
}

/**
 * /graphql for what the fast path leaves (GET, preflights, SSE and multipart, other content types): CORS, request
 * id, body, trace context, the streaming transports, then Apollo.
 */
function graphqlExpressStack(
  o: HttpServerOptions,
  apollo: ApolloServer<GraphQLContext>,
  origins: OriginPolicy,
  documents: DocumentCache,
): Array<express.RequestHandler | ErrorRequestHandler> {
  const tooLarge: ErrorRequestHandler = (err, _req, res, next) => {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') return writeRefusal(res, 413, 'PAYLOAD_TOO_LARGE', `request body over ${o.maxBodyBytes} bytes`);
    if (type === 'entity.parse.failed') return writeRefusal(res, 400, 'BAD_REQUEST', 'request body is not valid JSON');
    next(err);
  };
  const streams = makeHttpStreams({
    ops: makeStreamOperations({
      schema: o.schema,
      buildContext: o.buildContext,
      documents,
      formatError: makeFormatError(o.logger),
      metrics: o.metrics,
      logger: o.logger,
    }),
    heartbeatMs: o.streamHeartbeatMs,
  });
  return [
    corsMiddleware(origins),
    (req: express.Request, res: express.Response, next: express.NextFunction) => {
      res.locals.requestId = requestIdFor(req, res);
      next();
    },
    express.json({ limit: o.maxBodyBytes }),
    tooLarge,
    // After the body parser (its stream callbacks would not carry the context along), before every transport.
    ...(o.requestContext ? [(req: express.Request, _res: express.Response, next: express.NextFunction) => o.requestContext!(req.headers, next)] : []),
    streams,
    expressMiddleware(apollo, {
      context: async ({ req, res }) =>
        (res.locals as Record<string, GraphQLContext | undefined>)[PREBUILT_CONTEXT] ?? httpContext(o.buildContext, req, res, res.locals.requestId as string),
    }),
  ];
}
