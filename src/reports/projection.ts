import { AppError, badInput } from '../errors';
import { ceilDiv, type Micros } from '../accounting/money';
import type { CostProjectionView } from './types';

export interface ModelShare {
  readonly model: string;
  readonly share: number;
}

/** The output price of each known model (micro-dollars per 1M tokens; null: unpriced). */
export type OutputPrices = ReadonlyMap<string, Micros | null>;

const SHARE_SUM_TOLERANCE = 1e-9;

/**
 * What a month of output tokens costs under a mix of models, from the current prices:
 *   tokens_i = round(monthlyOutputTokens x share_i)   (Math.round: halves round up; all values are non-negative)
 *   cost_i   = ceil(tokens_i x outputPrice_i / 1e6)  micro-dollars, exact in bigint
 *   total    = sum of cost_i
 * Rows keep the order of the mix. The rounded token counts need not add up to monthlyOutputTokens exactly.
 *
 * BAD_USER_INPUT naming `monthlyOutputTokens` unless it is a safe integer >= 0; naming `mix` when the mix is
 * empty, names an unknown model (the message lists the known ones), repeats a model, has a share outside [0, 1]
 * or shares that do not sum to 1 within 1e-9. UNPRICED_MODEL when a model of the mix has no output price.
 */
export function projectCost(monthlyOutputTokens: number, mix: readonly ModelShare[], prices: OutputPrices): CostProjectionView {
  if (typeof monthlyOutputTokens !== 'number' || !Number.isSafeInteger(monthlyOutputTokens) || monthlyOutputTokens < 0) {
    throw badInput('monthlyOutputTokens', `expected a whole number of tokens from 0 to ${Number.MAX_SAFE_INTEGER}, got ${String(monthlyOutputTokens)}`);
  }
  if (!Array.isArray(mix) || mix.length === 0) throw badInput('mix', 'expected at least one { model, share }');
  const seen = new Set<string>();
  let sum = 0;
  for (const m of mix) {
    if (!prices.has(m.model)) {
      throw badInput('mix', `unknown model "${String(m.model).slice(0, 64)}"; known models: ${[...prices.keys()].sort().join(', ')}`);
    }
    if (seen.has(m.model)) throw badInput('mix', `model "${m.model}" appears more than once`);
    seen.add(m.model);
    if (typeof m.share !== 'number' || !Number.isFinite(m.share) || m.share < 0 || m.share > 1) {
      throw badInput('mix', `share of "${m.model}" must be a number from 0 to 1, got ${String(m.share)}`);
    }
    sum += m.share;
  }
  if (Math.abs(sum - 1) > SHARE_SUM_TOLERANCE) throw badInput('mix', `shares must sum to 1 (within 1e-9), got ${sum}`);
  const unpriced = mix.filter((m) => prices.get(m.model) === null).map((m) => m.model);
  if (unpriced.length > 0) {
    throw new AppError('UNPRICED_MODEL', `no output price is known for ${unpriced.join(', ')}: it cannot be projected`, { models: unpriced });
  }
  let totalMicros = 0n;
  const rows = mix.map((m) => {
    const outputTokens = Math.round(monthlyOutputTokens * m.share);
    const costMicros = ceilDiv(BigInt(outputTokens) * (prices.get(m.model) as Micros), 1_000_000n);
    totalMicros += costMicros;
    return { model: m.model, share: m.share, outputTokens, costMicros };
  });
  return { monthlyOutputTokens, totalMicros, rows };
}

/** Pace below an hour of the month is noise (one request extrapolated over a month): no forecast before then. */
const MIN_PACE_MS = 3600_000n;

/**
 * The UTC day (YYYY-MM-DD) a month's budget runs out at this month's pace so far, or null when it lasts the month
 * (or has no pace yet, or is already spent: the 100% threshold says that). Linear: spent / elapsed since the month
 * began, projected from `now`; exact in bigint milliseconds.
 */
export function projectBudgetExhaustion(i: { spentMicros: Micros; budgetMicros: Micros; monthStart: Date; monthEnd: Date; now: Date }): string | null {
  const elapsed = BigInt(i.now.getTime() - i.monthStart.getTime());
  const remaining = i.budgetMicros - i.spentMicros;
  if (elapsed < MIN_PACE_MS || i.spentMicros <= 0n || remaining <= 0n) return null;
  const at = i.now.getTime() + Number((remaining * elapsed) / i.spentMicros);
  return at < i.monthEnd.getTime() ? new Date(at).toISOString().slice(0, 10) : null;
}
