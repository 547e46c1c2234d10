import { badInput } from '../errors';

/**
 * Money is integer micro-dollars in a bigint, everywhere. These are the only conversions to and from the decimal
 * strings of the `Usd` scalar; no float ever holds an amount.
 */
export type Micros = bigint;

const USD_INPUT = /^(0|[1-9]\d{0,15})(?:\.(\d{1,6}))?$/;

/**
 * The largest amount the gateway keeps exact: 2^53 - 1 micro-dollars ($9,007,199,254.740991). Redis' Lua holds
 * numbers as doubles, exact up to 2^53; Postgres BIGINT holds more. Budgets, prices (per million tokens) and the
 * hold of one request are refused above it.
 */
export const MAX_EXACT_MICROS: Micros = 2n ** 53n - 1n;

/** "25", "0.5", "13.40" -> micro-dollars. Throws BAD_USER_INPUT naming `field` for anything else (signs, exponents, >6 decimals, above MAX_EXACT_MICROS). */
export function parseUsd(value: unknown, field = 'Usd'): Micros {
  if (typeof value !== 'string') {
    throw badInput(field, `expected a decimal string of US dollars such as "25" or "0.50", got ${typeof value}`);
  }
  const m = USD_INPUT.exec(value.trim());
  if (!m) {
    throw badInput(
      field,
      `"${value.slice(0, 40)}" is not an exact amount of US dollars: use a non-negative decimal with at most 6 fractional digits, such as "25" or "0.000150"`,
    );
  }
  const whole = BigInt(m[1]!);
  const frac = BigInt((m[2] ?? '').padEnd(6, '0'));
  const micros = whole * 1_000_000n + frac;
  if (micros > MAX_EXACT_MICROS) {
    throw badInput(field, `"${value.slice(0, 40)}" is more than the largest amount the gateway keeps exact, "${formatUsd(MAX_EXACT_MICROS)}"`);
  }
  return micros;
}

/** Micro-dollars -> "96.000000" (always six fractional digits; negative amounts keep their sign). */
export function formatUsd(micros: Micros): string {
  const neg = micros < 0n;
  const abs = neg ? -micros : micros;
  const whole = abs / 1_000_000n;
  const frac = (abs % 1_000_000n).toString().padStart(6, '0');
  return `${neg ? '-' : ''}${whole}.${frac}`;
}

/** Integer division rounding up, for non-negative operands: every partial micro-dollar is charged. */
export function ceilDiv(n: bigint, d: bigint): bigint {
  return n === 0n ? 0n : (n + d - 1n) / d;
}
