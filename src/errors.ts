/**
 * The one error type of the domain. Code below graphql/ throws AppError; graphql/errors.ts translates it to a
 * GraphQLError with extensions.code and the HTTP status the contract gives. Anything else is masked.
 */
export const APP_ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED',
  'BUDGET_EXCEEDED',
  'UNPRICED_MODEL',
  'UPSTREAM_UNAVAILABLE',
  'UPSTREAM_INTERRUPTED',
  'IDEMPOTENCY_MISMATCH',
  'SERVICE_UNAVAILABLE',
  'INTERNAL_SERVER_ERROR',
] as const;

export type AppErrorCode = (typeof APP_ERROR_CODES)[number];

/** HTTP status per code, as the contract gives it; codes not listed answer 200 with the error in the body. */
export const HTTP_STATUS: Partial<Record<AppErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

export type AppErrorExtensions = Readonly<Record<string, unknown>>;

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly extensions: AppErrorExtensions = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const badInput = (field: string, message: string): AppError => new AppError('BAD_USER_INPUT', `${field}: ${message}`, { field });

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** Redis or Postgres failed under a request: fail closed with SERVICE_UNAVAILABLE, nothing charged. */
export const serviceUnavailable = (what: string, cause: unknown): AppError =>
  new AppError('SERVICE_UNAVAILABLE', `the gateway cannot reach ${what} right now; nothing was charged, try again shortly`, {}, { cause });

/** For `.catch`: an AppError passes through, anything else (a driver error) becomes SERVICE_UNAVAILABLE for `what`. */
export const rethrowUnavailable =
  (what: string) =>
  (e: unknown): never => {
    throw isAppError(e) ? e : serviceUnavailable(what, e);
  };

/**
 * The default of a switch over a union: `value` is `never` when every member has its case, so adding a member
 * without one fails to compile; at run time it names the value the code did not expect.
 */
export class UnreachableCaseError extends Error {
  override readonly name = 'UnreachableCaseError';
  constructor(value: never) {
    super(`unexpected case: ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}
