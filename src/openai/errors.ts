import { randomUUID } from 'node:crypto';
import { isAppError, type AppError, type AppErrorCode } from '../errors';
import type { Logger } from '../infra/logger';

/** OpenAI's error body: what its SDKs parse into APIError.{message,type,param,code}. */
export interface OpenAIErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export interface OpenAIErrorResponse {
  readonly status: number;
  readonly body: OpenAIErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

interface Shape {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
}

/** Status, type and code per AppError code, as OpenAI's API answers the nearest equivalent. */
const SHAPES: Record<AppErrorCode, Shape> = {
  UNAUTHENTICATED: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  FORBIDDEN: { status: 403, type: 'permission_error', code: 'forbidden' },
  BAD_USER_INPUT: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'not_found' },
  // 409 would make OpenAI's SDKs retry; the same request cannot succeed on a retry.
  CONFLICT: { status: 400, type: 'invalid_request_error', code: 'conflict' },
  PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  RATE_LIMITED: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  BUDGET_EXCEEDED: { status: 429, type: 'insufficient_quota', code: 'insufficient_quota' },
  UNPRICED_MODEL: { status: 400, type: 'invalid_request_error', code: 'model_not_priced' },
  UPSTREAM_UNAVAILABLE: { status: 502, type: 'server_error', code: 'upstream_unavailable' },
  UPSTREAM_INTERRUPTED: { status: 502, type: 'server_error', code: 'upstream_interrupted' },
  IDEMPOTENCY_MISMATCH: { status: 400, type: 'invalid_request_error', code: 'idempotency_key_reused' },
  SERVICE_UNAVAILABLE: { status: 503, type: 'server_error', code: 'service_unavailable' },
  INTERNAL_SERVER_ERROR: { status: 500, type: 'server_error', code: 'internal_error' },
};

/** Why a request was FORBIDDEN (extensions.reason) -> the code an OpenAI client can branch on. */
const FORBIDDEN_CODES: Readonly<Record<string, string>> = {
  SUSPENDED: 'tenant_suspended',
  MODEL_NOT_ALLOWED: 'model_not_allowed',
  MODEL_DISABLED: 'model_disabled',
};

/** The use case's field names -> OpenAI's parameter names. */
const PARAMS: Readonly<Record<string, string>> = { profile: 'model', maxTokens: 'max_tokens', idempotencyKey: 'Idempotency-Key' };

/** Whole seconds for Retry-After, never 0 (a 0 makes clients spin). */
const retryAfterSeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/** Seconds until the next UTC month, when a monthly budget starts afresh. */
export function secondsToNextMonth(now: Date): number {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return retryAfterSeconds(next - now.getTime());
}

/**
 * Any error -> OpenAI's shape. AppErrors keep their message; anything else is masked as a 500 with an error id that
 * is logged with the cause. Rate denials carry Retry-After (whole seconds); a budget denial carries the seconds to
 * the next month and `x-should-retry: false`, because no retry within the month can succeed.
 */
export function toOpenAIError(e: unknown, logger: Logger, now: Date = new Date()): OpenAIErrorResponse {
  if (!isAppError(e)) {
    const errorId = randomUUID();
    logger.error({ err: e, errorId }, 'unexpected error on the OpenAI-compatible API (masked as 500)');
    return {
      status: 500,
      body: { error: { message: `internal error; quote error id ${errorId} when reporting it`, type: 'server_error', param: null, code: 'internal_error' } },
      headers: {},
    };
  }
  return fromAppError(e, now);
}

export function fromAppError(e: AppError, now: Date = new Date()): OpenAIErrorResponse {
  const shape = SHAPES[e.code];
  const field = typeof e.extensions.field === 'string' ? e.extensions.field : null;
  const param = field === null ? (e.code === 'UNPRICED_MODEL' ? 'model' : null) : (PARAMS[field] ?? field);
  let type = shape.type;
  let code = shape.code;
  const headers: Record<string, string> = {};
  if (e.code === 'RATE_LIMITED') {
    if (e.extensions.limit === 'TOKENS_PER_MINUTE') type = 'tokens';
    const ms = e.extensions.retryAfterMs;
    if (typeof ms === 'number') headers['retry-after'] = String(retryAfterSeconds(ms));
  } else if (e.code === 'BUDGET_EXCEEDED') {
    headers['retry-after'] = String(secondsToNextMonth(now));
    headers['x-should-retry'] = 'false';
  } else if (e.code === 'NOT_FOUND' && param === 'model') {
    code = 'model_not_found';
  } else if (e.code === 'FORBIDDEN' && typeof e.extensions.reason === 'string') {
    code = FORBIDDEN_CODES[e.extensions.reason] ?? code;
  }
  return { status: shape.status, body: { error: { message: e.message, type, param, code } }, headers };
}
