/**
 * Which days of a month a report may read from the daily rollups and which it must read from the raw ledger.
 * Pure: the rollup job and the reports share the notion of a closed day through this module.
 */
export const DAY_MS = 86_400_000;
/** A day is closed this long after it ended: requests still running over midnight are settled or reaped by then. */
export const DEFAULT_ROLLUP_LAG_MS = 10 * 60_000;
/** Closed days this recent are re-verified against the ledger by every rollup pass. */
export const DEFAULT_RECHECK_DAYS = 35;

/** 'YYYY-MM-DD' of a UTC day. */
export const dayKey = (d: Date): string => d.toISOString().slice(0, 10);

/** Start of the UTC day that contains `ms`. */
export const utcDayStart = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;

/** A day (given by its start) is closed once now >= its end + lag. Whether it still holds HELD rows is the job's check. */
export const isDayClosed = (dayStartMs: number, nowMs: number, lagMs: number): boolean => nowMs >= dayStartMs + DAY_MS + lagMs;

export interface TimeRange {
  readonly start: Date;
  readonly end: Date;
}

export interface MonthPlan {
  /** Days ('YYYY-MM-DD') to read from daily_rollups. */
  readonly rollupDays: readonly string[];
  /** Half-open ranges of started_at to read from the raw ledger; contiguous raw days are merged into one range. */
  readonly rawRanges: readonly TimeRange[];
}

/**
 * Splits [start, end) (whole UTC days) into rollup days and raw ranges. A day is read from the rollups only when
 * the rollup job has recorded it as computed AND it is closed by this clock as well (a guard against a job whose
 * clock runs ahead); every other day is read raw, which is always exact.
 */
export function planMonth(range: TimeRange, computedDays: ReadonlySet<string>, nowMs: number, lagMs: number): MonthPlan {
  const rollupDays: string[] = [];
  const rawRanges: TimeRange[] = [];
  let rawStart: number | null = null;
  const endMs = range.end.getTime();
  for (let d = range.start.getTime(); d < endMs; d += DAY_MS) {
    const key = dayKey(new Date(d));
    if (computedDays.has(key) && isDayClosed(d, nowMs, lagMs)) {
      if (rawStart !== null) rawRanges.push({ start: new Date(rawStart), end: new Date(d) });
      rawStart = null;
      rollupDays.push(key);
    } else if (rawStart === null) {
      rawStart = d;
    }
  }
  if (rawStart !== null) rawRanges.push({ start: new Date(rawStart), end: new Date(endMs) });
  return { rollupDays, rawRanges };
}
