import { GraphQLError, Kind, type GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { APP_ERROR_CODES, AppError, HTTP_STATUS, isAppError, serviceUnavailable } from '../errors';
import { unavailableBackend } from '../infra/backend-errors';
import type { Logger } from '../infra/logger';

/** Apollo's and graphql-js's own codes for malformed documents pass through as they are. */
const SERVER_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'BAD_USER_INPUT',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/** AppError -> GraphQLError with extensions.code (and the contract's extras, e.g. retryAfterMs), no stack. */
export function toGraphQLError(e: AppError): GraphQLError {
  const status = HTTP_STATUS[e.code];
  return new GraphQLError(e.message, {
    extensions: { ...e.extensions, code: e.code, ...(status ? { http: { status } } : {}) },
  });
}

/**
 * The edge's error mask. AppErrors keep their code and message; GraphQL's own document errors keep theirs; anything
 * else (a bug, SQL, an upstream body) becomes INTERNAL_SERVER_ERROR with the request id, logged with its detail.
 */
export function makeFormatError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    // Apollo's unwrapResolverError unwraps only errors with a path; graphql-ws wraps an error thrown by a
    // subscription's source stream (chatStream's BAD_USER_INPUT, RATE_LIMITED, UPSTREAM_UNAVAILABLE...) in a
    // path-less GraphQLError, so look through originalError for an AppError as well.
    const unwrapped = unwrapResolverError(error);
    const candidate = !isAppError(unwrapped) && error instanceof GraphQLError && isAppError(error.originalError) ? error.originalError : unwrapped;
    // The one place a lost Postgres or Redis becomes SERVICE_UNAVAILABLE for every query and mutation alike.
    const backend = isAppError(candidate) ? null : unavailableBackend(candidate ?? (error instanceof GraphQLError ? error.originalError : undefined));
    if (backend) logger.warn({ err: candidate, path: formatted.path }, `${backend} unavailable (answered SERVICE_UNAVAILABLE)`);
    const original = backend ? serviceUnavailable(backend, candidate) : candidate;
    if (isAppError(original)) {
      const { http: _http, ...ext } = toGraphQLError(original).extensions as Record<string, unknown>;
      return { message: original.message, locations: formatted.locations, path: formatted.path, extensions: ext };
    }
    // Apollo labels variable coercion errors BAD_USER_INPUT itself; graphql-ws passes graphql-js's unlabelled ones.
    const code = formatted.extensions?.code ?? (isVariableCoercionError(error) ? 'BAD_USER_INPUT' : undefined);
    if (typeof code === 'string' && (SERVER_CODES.has(code) || (code !== 'INTERNAL_SERVER_ERROR' && isContractCode(code)))) {
      const { stacktrace: _s, http: _h, ...ext } = formatted.extensions ?? {};
      return { ...formatted, extensions: { ...ext, code } };
    }
    const errorId = crypto.randomUUID();
    logger.error({ err: original, errorId, path: formatted.path }, 'unexpected error (masked as INTERNAL_SERVER_ERROR)');
    return {
      message: `internal error; quote error id ${errorId} when reporting it`,
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR', errorId },
    };
  };
}

/** graphql-js's error for a variable value that does not fit its type (the same test Apollo makes). */
function isVariableCoercionError(e: unknown): boolean {
  if (!(e instanceof GraphQLError) || e.path || e.nodes?.length !== 1 || e.nodes[0]!.kind !== Kind.VARIABLE_DEFINITION) return false;
  return /^Variable "\$[^"]+" (got invalid value|of required type|of non-null type)/.test(e.message);
}

const isContractCode = (c: string): boolean => (APP_ERROR_CODES as readonly string[]).includes(c);

/** An HTTP status for a response whose errors all agree on one; the first error with a status wins. */
export function statusFor(errors: readonly { extensions?: Record<string, unknown> }[]): number | undefined {
  for (const e of errors) {
    const s = HTTP_STATUS[e.extensions?.code as AppError['code']];
    if (s) return s;
  }
  return undefined;
}
