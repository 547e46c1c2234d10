import { GraphQLScalarType, Kind } from 'graphql';
import { formatUsd } from '../accounting/money';

/**
 * Usd: out, integer micro-dollars (bigint) as "96.000000". In, the raw string: resolvers parse it with parseUsd and
 * the argument's name, so a wrong amount is BAD_USER_INPUT naming the field (a scalar error could not name it).
 */
export const UsdScalar = new GraphQLScalarType<string, string>({
  name: 'Usd',
  serialize(v) {
    if (typeof v !== 'bigint') throw new TypeError('Usd must be serialized from bigint micro-dollars');
    return formatUsd(v);
  },
  parseValue(v) {
    if (typeof v !== 'string') throw new TypeError('Usd: expected a decimal string such as "25" or "0.50" (numbers are refused: a float is not money)');
    return v;
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new TypeError('Usd: expected a decimal string such as "25" or "0.50" (numbers are refused: a float is not money)');
    return ast.value;
  },
});

const MAX_COUNT = Number.MAX_SAFE_INTEGER;
const checkCount = (n: number): number => {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`Count: expected a whole number from 0 to ${MAX_COUNT}`);
  return n;
};

export const CountScalar = new GraphQLScalarType<number, number>({
  name: 'Count',
  serialize(v) {
    if (typeof v === 'bigint') {
      if (v > BigInt(MAX_COUNT)) throw new TypeError('Count overflow');
      return Number(v);
    }
    return checkCount(Number(v));
  },
  parseValue(v) {
    if (typeof v !== 'number') throw new TypeError('Count: expected a whole number');
    return checkCount(v);
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.INT) throw new TypeError('Count: expected a whole number');
    return checkCount(Number(ast.value));
  },
});

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize(v) {
    const d = v instanceof Date ? v : new Date(String(v));
    if (Number.isNaN(d.getTime())) throw new TypeError('DateTime: invalid date');
    return d.toISOString();
  },
  parseValue(v) {
    const d = typeof v === 'string' ? new Date(v) : new Date(NaN);
    if (typeof v !== 'string' || Number.isNaN(d.getTime())) throw new TypeError('DateTime: expected an ISO 8601 date-time string');
    return d;
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new TypeError('DateTime: expected an ISO 8601 date-time string');
    const d = new Date(ast.value);
    if (Number.isNaN(d.getTime())) throw new TypeError('DateTime: expected an ISO 8601 date-time string');
    return d;
  },
});
