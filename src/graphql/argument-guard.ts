import { badInput } from '../errors';

/**
 * Values Postgres refuses, caught at the edge for every argument of every operation, so they are BAD_USER_INPUT
 * naming the argument (and nothing is written) instead of a driver error deep inside a write: a NUL character
 * (Postgres text cannot hold U+0000) and a date-time outside 0001-01-01..9999-12-31 (the range every layer between
 * here and a timestamptz column holds exactly).
 */
const MIN_DATE = new Date('0001-01-01T00:00:00.000Z');
const MAX_DATE = new Date('9999-12-31T23:59:59.999Z');

/** Throws BAD_USER_INPUT for the first unstorable value in `value`, named by its path (e.g. input.messages[0].content). */
export function checkStorable(value: unknown, path: string): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) throw badInput(path, 'contains a NUL character (\\u0000), which cannot be stored; remove it');
  } else if (value instanceof Date) {
    if (!(value >= MIN_DATE && value <= MAX_DATE)) {
      throw badInput(path, `expected a date-time from ${MIN_DATE.toISOString()} to ${MAX_DATE.toISOString()}`);
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkStorable(v, `${path}[${i}]`));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkStorable(v, `${path}.${k}`);
  }
}

const checkArgs = (args: unknown): void => {
  for (const [k, v] of Object.entries((args ?? {}) as Record<string, unknown>)) checkStorable(v, k);
};

type Fn = (parent: unknown, args: unknown, ...rest: unknown[]) => unknown;
type RootMap = Record<string, Fn | { subscribe: Fn; resolve?: Fn }>;

/** Wraps every root field (Query, Mutation, Subscription.subscribe) so its arguments pass checkStorable first. */
export function guardArguments<R extends object>(resolvers: R): R {
  const out: Record<string, unknown> = { ...(resolvers as Record<string, unknown>) };
  for (const root of ['Query', 'Mutation', 'Subscription']) {
    const fields = (resolvers as Record<string, RootMap | undefined>)[root];
    if (!fields) continue;
    out[root] = Object.fromEntries(
      Object.entries(fields).map(([name, f]) => {
        if (typeof f === 'function') return [name, (p: unknown, a: unknown, ...rest: unknown[]) => (checkArgs(a), f(p, a, ...rest))];
        return [name, { ...f, subscribe: (p: unknown, a: unknown, ...rest: unknown[]) => (checkArgs(a), f.subscribe(p, a, ...rest)) }];
      }),
    );
  }
  return out as R;
}
