import { performance } from 'node:perf_hooks';
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { GraphQLContext } from '../graphql/context';
import { statusFor } from '../graphql/errors';
import type { Metrics } from './metrics';
import { SUBSCRIPTION_TRANSPORTS } from './http-streams';
import { makeOperationRecorder } from './operation-log';

/** A subscription over plain JSON HTTP cannot stream: a coded 400 naming the transports that can. */
export const subscriptionTransportPlugin: ApolloServerPlugin<GraphQLContext> = {
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

/**
 * What every HTTP operation's response gets, in one hook (one plugin per concern cost a hook call each per request,
 * measured in BENCHMARKS.md "Apollo HTTP path (wave 3)"):
 * - the contract's HTTP status (401, 403, 413, 429, 503) from the error codes, and Retry-After on 429 (exposed to
 *   pages on other origins) from the error's retryAfterMs;
 * - the operation counter and its one log line through the context's logger (request id and tenant id bound), by the
 *   recorder every transport uses (operation-log.ts). Never variables or results: no prompts, completions or keys.
 */
export function makeResponsePlugin(metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  const record = makeOperationRecorder(metrics);
  return {
    async requestDidStart({ contextValue }) {
      const started = performance.now();
      return {
        async willSendResponse({ response, operationName }) {
          if (response.body.kind !== 'single') return;
          const errors = response.body.singleResult.errors ?? [];
          if (errors.length) {
            const s = statusFor(errors as never);
            if (s) response.http.status = s;
            const retry = errors.find((e) => typeof e.extensions?.retryAfterMs === 'number')?.extensions?.retryAfterMs as number | undefined;
            if (s === 429 && retry !== undefined) response.http.headers.set('retry-after', String(Math.max(1, Math.ceil(retry / 1000))));
          }
          record({ name: operationName ?? 'anonymous', log: contextValue.log, transport: 'http', startedAt: started, errors });
        },
      };
    },
  };
}
