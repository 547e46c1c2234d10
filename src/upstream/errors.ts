/**
 * Classification of upstream failures. A failure is a value (`UpstreamFailure`, routing's AttemptFailure), carried
 * inside the client by one error class (`UpstreamError`). Messages are built from codes only: they never contain the
 * upstream's body, its headers or the gateway's key, so they are safe to pass on.
 */

import type { AttemptFailure, RetryableCode } from '../routing/fallback-step';

/** Routing defines what a failed call is; the client produces it. */
export type UpstreamFailure = AttemptFailure;
export type { RetryableCode };

/** How the client carries a failure inside its own read loop; streamChat hands callers the `failure` value only. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly failure: UpstreamFailure,
    options?: { cause?: unknown },
  ) {
    super(describeFailure(failure), options);
  }

  /** The failure's code; 'ABORTED' for an aborted request. */
  get code(): string {
    return this.failure.kind === 'aborted' ? 'ABORTED' : this.failure.code;
  }
}

export const retryable = (code: RetryableCode, retryAfterMs?: number): UpstreamError =>
  new UpstreamError(retryAfterMs === undefined ? { kind: 'retryable', code } : { kind: 'retryable', code, retryAfterMs });

function describeFailure(f: UpstreamFailure): string {
  switch (f.kind) {
    case 'retryable':
      return `upstream failed (${f.code})`;
    case 'fatal':
      return `upstream refused the request (${f.code})`;
    case 'auth':
      return `upstream rejected the gateway's credentials (${f.code})`;
    case 'aborted':
      return 'upstream request aborted by the caller';
  }
}

/**
 * A non-2xx HTTP status as a failure: 401/403 auth; 404, 408, 409, 425, 429 and 5xx retryable (404 is the upstream
 * not serving that model id: another model may well answer); any other 4xx fatal. `retryAfterMs` is kept for
 * retryable statuses only.
 */
export function classifyStatus(status: number, retryAfterMs?: number): UpstreamFailure {
  const code = `HTTP_${status}` as const;
  if (status === 401 || status === 403) return { kind: 'auth', code: status === 401 ? 'HTTP_401' : 'HTTP_403' };
  const isRetryable = status >= 500 || status === 404 || status === 408 || status === 409 || status === 425 || status === 429;
  if (isRetryable || status < 400) {
    return retryAfterMs === undefined ? { kind: 'retryable', code } : { kind: 'retryable', code, retryAfterMs };
  }
  return { kind: 'fatal', code, status };
}

/**
 * `Retry-After` as milliseconds from `nowMs`: delta-seconds ("1", "2.5") or an HTTP date. Undefined when absent or
 * unreadable; never negative.
 */
export function parseRetryAfter(value: string | readonly string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (typeof raw !== 'string') return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.ceil(Number(text) * 1000);
  // An HTTP date names its day and month; Date.parse alone would read "-1" as a year.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
