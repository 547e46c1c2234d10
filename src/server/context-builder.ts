import { randomUUID } from 'node:crypto';
import { AppError, isAppError } from '../errors';
import type { Logger } from '../infra/logger';
import type { Services } from '../services';
import type { GraphQLContext } from '../graphql/context';
import { toGraphQLError } from '../graphql/errors';
import type { Metrics } from './metrics';

/**
 * The one context builder of HTTP and graphql-ws: sync the cross-instance epoch, authenticate, attach services.
 * Every refusal is an AppError, mapped once (graphql/errors.ts) to a GraphQLError carrying its HTTP status (401, 403,
 * 429, 503), never Apollo's default 500.
 */
export function makeContextBuilder(services: Services, logger: Logger, metrics?: Metrics) {
  // Refused before any operation ran, so Apollo's plugins never see it: counted and logged here.
  const refused = (requestId: string, code: string) => {
    metrics?.refusals.inc({ code });
    logger.info({ requestId, code }, 'graphql request refused');
  };
  return async (i: { authorization: unknown; signal: AbortSignal; requestId?: string; clientAddress?: string }): Promise<GraphQLContext> => {
    const requestId = i.requestId ?? randomUUID();
    try {
      await services.epoch.sync();
      const principal = await services.auth.authenticate(i.authorization, i.clientAddress);
      const log = logger.child({ requestId, tenantId: principal.kind === 'tenant' ? principal.tenantId : 'admin' });
      return { principal, requestId, signal: i.signal, services, log };
    } catch (e) {
      if (isAppError(e)) {
        refused(requestId, e.code);
        throw toGraphQLError(e);
      }
      refused(requestId, 'SERVICE_UNAVAILABLE');
      logger.error({ err: e, requestId }, 'authentication backend unavailable');
      throw toGraphQLError(
        new AppError('SERVICE_UNAVAILABLE', 'the gateway cannot reach its database or Redis right now; try again shortly', {}, { cause: e }),
      );
    }
  };
}

export type ContextBuilder = ReturnType<typeof makeContextBuilder>;
