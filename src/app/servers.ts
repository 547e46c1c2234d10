import type { Config } from '../config';
import type { Logger } from '../infra/logger';
import { pingGate } from '../infra/redis';
import { AppError } from '../errors';
import { toGraphQLError } from '../graphql/errors';
import { buildSchema } from '../graphql/schema';
import { makeContextBuilder } from '../server/context-builder';
import { createHttpServer } from '../server/http-server';
import { mountPlayground } from '../server/playground';
import { makeOriginPolicy } from '../server/cors';
import { openaiRouter } from '../openai/router';
import type { Clients } from './clients';
import type { Closers } from './closers';
import type { Core } from './services';

/** Starts HTTP (GraphQL, SSE, multipart, /v1, playground, health, metrics) and graphql-ws on one port. */
export async function startServers(config: Config, clients: Clients, core: Core, logger: Logger, closers: Closers, host: string): Promise<number> {
  const { services, metrics, drain } = core;
  const buildContext = makeContextBuilder(services, logger, metrics);
  // The body limit leaves room for JSON framing around the messages' own cap.
  const maxBodyBytes = config.MAX_REQUEST_BYTES + 64 * 1024;
  const { tracing } = clients;
  const server = await createHttpServer({
    schema: buildSchema(),
    // Draining: every new operation, on any transport, is refused so the client retries on another instance.
    buildContext: async (i) => {
      if (drain.draining)
        throw toGraphQLError(new AppError('SERVICE_UNAVAILABLE', 'this gateway instance is shutting down; retry, another instance will answer'));
      return buildContext(i);
    },
    metrics,
    logger,
    production: config.NODE_ENV === 'production',
    maxBodyBytes,
    ready: async () => {
      if (drain.draining) throw new Error('draining: shutting down');
      await Promise.all([clients.db.$queryRaw`SELECT 1`, pingGate(clients.gate)]);
    },
    mount: (app) => {
      mountPlayground(app);
      app.use('/v1', openaiRouter({ services, logger, metrics, maxBodyBytes, origins: makeOriginPolicy(config.corsOrigins) }));
    },
    corsOrigins: config.corsOrigins,
    subscriptionsPerConnection: config.SUBSCRIPTIONS_PER_CONNECTION,
    streamHeartbeatMs: config.STREAM_HEARTBEAT_MS,
    requestContext: tracing ? (headers, fn) => tracing.runWithHeaders(headers, fn) : undefined,
  });
  const port = await server.listen(config.PORT, host);
  closers.push(() => server.stop());
  // Before the server drains (closers run last-in first): open budgetEvents streams end rather than hold it up.
  closers.push(() => services.alerts.stop());
  return port;
}
