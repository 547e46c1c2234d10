import { planMonth, isDayClosed, DAY_MS } from '../../src/reports/day-plan';
import { monthRange } from '../../src/accounting/period';

const LAG = 10 * 60_000;
const nov = monthRange('2026-11');
const iso = (s: string) => new Date(s);

describe('isDayClosed', () => {
  it('closes a day once its end plus the lag has passed', () => {
    const day = Date.parse('2026-11-05T00:00:00Z');
    expect(isDayClosed(day, Date.parse('2026-11-06T00:09:59.999Z'), LAG)).toBe(false);
    expect(isDayClosed(day, Date.parse('2026-11-06T00:10:00.000Z'), LAG)).toBe(true);
  });
});

describe('planMonth', () => {
  it('reads every day raw when nothing is computed', () => {
    const p = planMonth(nov, new Set(), Date.parse('2026-12-15T00:00:00Z'), LAG);
    expect(p.rollupDays).toEqual([]);
    expect(p.rawRanges).toEqual([{ start: nov.start, end: nov.end }]);
  });

  it('reads computed closed days from rollups and merges the raw gaps into ranges', () => {
    const computed = new Set(['2026-11-01', '2026-11-02', '2026-11-04', '2026-11-05']);
    const p = planMonth(nov, computed, Date.parse('2026-11-06T12:00:00Z'), LAG);
    expect(p.rollupDays).toEqual(['2026-11-01', '2026-11-02', '2026-11-04', '2026-11-05']);
    expect(p.rawRanges).toEqual([
      { start: iso('2026-11-03T00:00:00Z'), end: iso('2026-11-04T00:00:00Z') },
      { start: iso('2026-11-06T00:00:00Z'), end: nov.end },
    ]);
  });

  it('reads a computed day raw while it is not closed by its own clock', () => {
    const p = planMonth(nov, new Set(['2026-11-01', '2026-11-02']), Date.parse('2026-11-03T00:05:00Z'), LAG);
    expect(p.rollupDays).toEqual(['2026-11-01']);
    expect(p.rawRanges).toEqual([{ start: iso('2026-11-02T00:00:00Z'), end: nov.end }]);
  });

  it('covers every day of the month exactly once', () => {
    const feb = monthRange('2028-02');
    const computed = new Set(['2028-02-01', '2028-02-10', '2028-02-29']);
    const p = planMonth(feb, computed, Date.parse('2028-04-01T00:00:00Z'), LAG);
    const rawDays = p.rawRanges.reduce((n, r) => n + (r.end.getTime() - r.start.getTime()) / DAY_MS, 0);
    expect(p.rollupDays.length + rawDays).toBe(29);
  });
});
