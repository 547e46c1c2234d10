import type { Logger } from '../infra/logger';
import type { Principal } from '../tenants/principal';
import type { Services } from '../services';

/** One per operation, built the same way for HTTP and graphql-ws (server/context-builder.ts). */
export interface GraphQLContext {
  readonly principal: Principal;
  readonly requestId: string;
  /** Aborted when the client goes away (HTTP connection closed, or the subscription ended). */
  readonly signal: AbortSignal;
  readonly services: Services;
  readonly log: Logger;
}
