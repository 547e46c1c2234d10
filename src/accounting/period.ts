import { badInput } from '../errors';

/** The budget period: the calendar month in UTC in which a request started, for the gate, the ledger and reports. */
export function monthOf(d: Date): string {
  return d.toISOString().slice(0, 7);
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** 'YYYY-MM' -> [start, end) in UTC. BAD_USER_INPUT naming `field` for anything else. */
export function monthRange(month: string, field = 'month'): { start: Date; end: Date } {
  const m = MONTH.exec(month);
  if (!m) throw badInput(field, `"${String(month).slice(0, 20)}" is not a month: use YYYY-MM, e.g. 2026-11`);
  const y = Number(m[1]);
  const mo = Number(m[2]);
  return { start: new Date(Date.UTC(y, mo - 1, 1)), end: new Date(Date.UTC(y, mo, 1)) };
}
