import { UnreachableCaseError } from '../errors';

/**
 * The fallback walk's decisions, as a pure table: how one attempt failed, whether it had delivered output, and the
 * mode -> what the walk does next. No I/O, no clocks: route-chat.ts does the calls and applies the step.
 */

/** Codes of failures another model (or the same one, later) may not have. */
export type RetryableCode =
  | `HTTP_${number}`
  /** Connection refused, reset or closed before the response headers. */
  | 'CONNECTION'
  /** The first-token deadline passed (connect + headers + first content chunk). */
  | 'TIMEOUT'
  /** The idle deadline passed between chunks after content had started. */
  | 'STALL'
  /** The response could not be read as an OpenAI chat completion stream before any content. */
  | 'GARBAGE'
  /** The upstream sent an error object inside the stream before any content. */
  | 'STREAM_ERROR'
  /** The stream ended without `[DONE]`, or became unreadable after content had started. */
  | 'INTERRUPTED';

/**
 * How a model call failed, as its I/O reports it. Routing defines it; the upstream client produces it, so the walk
 * never needs the client's error class.
 */
export type AttemptFailure =
  | { readonly kind: 'retryable'; readonly code: RetryableCode; readonly retryAfterMs?: number }
  /** A 4xx another model would also refuse: the request itself is wrong. */
  | { readonly kind: 'fatal'; readonly code: `HTTP_${number}`; readonly status: number }
  /** 401/403: the gateway's own upstream key is wrong. Every model would fail the same way. */
  | { readonly kind: 'auth'; readonly code: 'HTTP_401' | 'HTTP_403' }
  /** The call's signal aborted it. */
  | { readonly kind: 'aborted' };

/** Why an attempt ended without completing, once the walk has read its signals. */
export type Failure =
  | Exclude<AttemptFailure, { kind: 'aborted' }>
  /** The client went away (its signal). */
  | { readonly kind: 'cancelled' }
  /** The whole request's deadline passed. */
  | { readonly kind: 'total' }
  /** Aborted by neither of the walk's signals, or the call's I/O threw: not the model's answer, try the next. */
  | { readonly kind: 'other'; readonly code: 'ABORTED' | 'UNEXPECTED' };

export type Mode = 'stream' | 'collect';

/** What the walk does after a failed attempt. */
export type Step =
  /** Try the next model of the chain (nothing was delivered). */
  | { readonly kind: 'next' }
  /** Collect mode after partial output: bill the attempt, drop its text, try the next model. */
  | { readonly kind: 'discard-and-next' }
  /** End with the partial answer already delivered. */
  | { readonly kind: 'end'; readonly outcome: 'UPSTREAM_INTERRUPTED' | 'TIMEOUT' | 'CLIENT_CANCELLED' }
  /**
   * Stop without an answer: the chain failed (or the gateway's key was refused: every model would fail), the client
   * left, the deadline passed, or the upstream refused the request as invalid.
   */
  | { readonly kind: 'give-up'; readonly why: 'chain' | 'cancelled' | 'total' | 'invalid' };

/** Reads a call's end: the client's signal and the total deadline are the cause of whatever error an abort surfaced as. */
export function readFailure(f: AttemptFailure | null, cancelled: boolean, totalPassed: boolean): Failure {
  if (cancelled) return { kind: 'cancelled' };
  if (totalPassed) return { kind: 'total' };
  if (f === null) return { kind: 'other', code: 'UNEXPECTED' };
  if (f.kind === 'aborted') return { kind: 'other', code: 'ABORTED' };
  return f;
}

/**
 * The decision table. The mid-stream rule: in 'stream' mode, once output was delivered the model never changes; in
 * 'collect' mode a retryable failure after partial output discards it and falls back.
 */
export function nextStep(f: Failure, delivered: boolean, mode: Mode): Step {
  switch (f.kind) {
    case 'cancelled':
      return delivered ? { kind: 'end', outcome: 'CLIENT_CANCELLED' } : { kind: 'give-up', why: 'cancelled' };
    case 'total':
      return delivered ? { kind: 'end', outcome: 'TIMEOUT' } : { kind: 'give-up', why: 'total' };
    case 'auth':
      return { kind: 'give-up', why: 'chain' };
    case 'fatal':
      return delivered && mode === 'stream' ? { kind: 'end', outcome: 'UPSTREAM_INTERRUPTED' } : { kind: 'give-up', why: 'invalid' };
    case 'retryable':
    case 'other':
      if (!delivered) return { kind: 'next' };
      if (mode === 'collect') return { kind: 'discard-and-next' };
      return { kind: 'end', outcome: f.code === 'STALL' ? 'TIMEOUT' : 'UPSTREAM_INTERRUPTED' };
    default:
      throw new UnreachableCaseError(f);
  }
}

/** The attempt record's error code of a failure. */
export type FailureCode = RetryableCode | 'HTTP_401' | 'HTTP_403' | 'CLIENT_CANCELLED' | 'TOTAL_TIMEOUT' | 'ABORTED' | 'UNEXPECTED';

export function failureCode(f: Failure): FailureCode {
  switch (f.kind) {
    case 'cancelled':
      return 'CLIENT_CANCELLED';
    case 'total':
      return 'TOTAL_TIMEOUT';
    case 'retryable':
    case 'fatal':
    case 'auth':
    case 'other':
      return f.code;
    default:
      throw new UnreachableCaseError(f);
  }
}

/**
 * How the failure counts for the model's breaker: failures another attempt may not have count against it (with
 * their Retry-After); the client leaving, the deadline, an invalid request and a refused gateway key do not.
 */
export function healthVerdict(f: Failure): { readonly counts: boolean; readonly retryAfterMs?: number } {
  switch (f.kind) {
    case 'retryable':
      return f.retryAfterMs === undefined ? { counts: true } : { counts: true, retryAfterMs: f.retryAfterMs };
    case 'other':
      return { counts: true };
    case 'cancelled':
    case 'total':
    case 'fatal':
    case 'auth':
      return { counts: false };
    default:
      throw new UnreachableCaseError(f);
  }
}
