/**
 * Encoding of script arguments. Lua numbers are doubles: integers are exact up to 2^53, so every amount and count
 * is checked to stay there before it is sent (as a decimal string). A value outside is a caller bug: RangeError.
 */

const MAX_MICROS = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Largest token count or per-minute limit. A window sums at most 61 one-second buckets, each at most a limit's worth
 * plus corrections: this bound keeps every sum far below 2^53, where Lua's doubles stop being exact integers.
 */
export const MAX_TOKENS = 100_000_000_000;

/** Micro-USD, 0 <= v <= 2^53 - 1, as a decimal string. */
export function microsArg(field: string, v: bigint): string {
  if (v < 0n || v > MAX_MICROS) throw new RangeError(`limits: ${field} must be between 0 and ${MAX_MICROS} micro-USD, got ${v}`);
  return v.toString();
}

/** Nullable micro-USD: '' stands for "no budget". */
export function optionalMicrosArg(field: string, v: bigint | null): string {
  return v === null ? '' : microsArg(field, v);
}

/** A non-negative integer count (tokens, requests) up to MAX_TOKENS. */
export function countArg(field: string, v: number): string {
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_TOKENS) {
    throw new RangeError(`limits: ${field} must be an integer between 0 and ${MAX_TOKENS}, got ${v}`);
  }
  return String(v);
}

/** A per-minute limit: '' stands for "no limit"; 0 admits nothing. */
export function limitArg(field: string, v: number | null | undefined): string {
  return v === null || v === undefined ? '' : countArg(field, v);
}

/** A signed token correction, |v| <= MAX_TOKENS. */
export function signedCountArg(field: string, v: number): string {
  if (!Number.isSafeInteger(v) || Math.abs(v) > MAX_TOKENS) {
    throw new RangeError(`limits: ${field} must be an integer within +-${MAX_TOKENS}, got ${v}`);
  }
  return String(v);
}

/** A duration or timestamp in ms: a positive safe integer (timestamps: >= 0). */
export function msArg(field: string, v: number, min = 1): string {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`limits: ${field} must be an integer >= ${min} ms, got ${v}`);
  return String(v);
}
