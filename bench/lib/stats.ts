/** Percentiles from raw samples (sorted arrays, nearest-rank), never from pre-bucketed averages. */
export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export const EMPTY_SUMMARY: Summary = { n: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };

/** Nearest-rank percentile of an ascending array (p in 0..100). NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: ArrayLike<number>): Summary {
  const n = samples.length;
  if (n === 0) return EMPTY_SUMMARY;
  const s = Float64Array.from(samples as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return { n, min: s[0]!, mean: sum / n, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[n - 1]! };
}

/** A growable Float64 sample buffer: no per-sample allocation while the load runs. */
export class Samples {
  private buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  values(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
  summary(): Summary {
    return summarize(this.values());
  }
}

/** Rounds for JSON and tables: 3 significant decimals for ms figures. */
export const round = (v: number, digits = 3): number => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

export function roundSummary(s: Summary, digits = 3): Summary {
  return {
    n: s.n,
    min: round(s.min, digits),
    mean: round(s.mean, digits),
    p50: round(s.p50, digits),
    p90: round(s.p90, digits),
    p99: round(s.p99, digits),
    max: round(s.max, digits),
  };
}
