import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLScalarType, parse, subscribe, type ExecutionResult } from 'graphql';
import { passEventThrough, subscribeOnce } from '../../src/graphql/subscription-execution';

/** A subscription whose input goes through a scalar that counts its coercions, and whose events have nested fields. */
function fixture() {
  let coercions = 0;
  const Counted = new GraphQLScalarType({
    name: 'Counted',
    parseValue: (v) => {
      coercions++;
      return v;
    },
  });
  const schema = makeExecutableSchema({
    typeDefs: /* GraphQL */ `
      scalar Counted
      input In {
        n: Int!
        tag: Counted
      }
      type Usage {
        tokens: Int!
        label: String!
      }
      type Event {
        id: ID!
        delta: String
        done: Boolean!
        usage: Usage
        broken: String
        brokenNonNull: String!
      }
      type Query {
        ok: Boolean
      }
      type Subscription {
        events(input: In!): Event!
        plain(input: In!): Event!
      }
    `,
    resolvers: {
      Counted,
      Usage: { label: (u: { tokens: number }) => `${u.tokens} tokens` },
      Event: {
        broken: () => {
          throw new Error('field failed');
        },
        brokenNonNull: () => {
          throw new Error('non-null field failed');
        },
      },
      Subscription: {
        events: { subscribe: (_p: unknown, a: { input: { n: number } }) => stream(a.input.n), resolve: passEventThrough },
        plain: { subscribe: (_p: unknown, a: { input: { n: number } }) => stream(a.input.n), resolve: (ev: unknown) => ev },
      },
    },
  });
  return { schema, coercions: () => coercions };
}

async function* stream(n: number) {
  for (let i = 0; i < n; i++) yield { id: 'r1', delta: `t${i}`, done: i === n - 1, usage: i === n - 1 ? { tokens: n } : null };
}

async function results(r: AsyncIterableIterator<ExecutionResult> | ExecutionResult): Promise<unknown[]> {
  if (!(Symbol.asyncIterator in r)) return [r];
  const out: unknown[] = [];
  for await (const x of r) out.push(JSON.parse(JSON.stringify(x)));
  return out;
}

const CASES: [string, string, Record<string, unknown>][] = [
  ['fields, nested objects and an alias', 'subscription S($i: In!) { e: events(input: $i) { id delta done usage { tokens label } } }', {}],
  [
    'fragments, __typename and a variable used by @include',
    'subscription S($i: In!, $u: Boolean!) { events(input: $i) { ...F usage @include(if: $u) { tokens } } } fragment F on Event { __typename delta }',
    { u: true },
  ],
  ['a failing nullable field: null with an error at its path', 'subscription S($i: In!) { events(input: $i) { delta broken } }', {}],
  ['a failing non-null field: the whole event null', 'subscription S($i: In!) { events(input: $i) { delta brokenNonNull } }', {}],
];

describe('subscribeOnce', () => {
  it.each(CASES)('gives graphql-js’s results: %s', async (_name, query, vars) => {
    const { schema } = fixture();
    const args = { schema, document: parse(query), variableValues: { i: { n: 3, tag: 'x' }, ...vars } };
    expect(await results(await subscribeOnce(args))).toEqual(await results(await subscribe(args)));
  });

  it('coerces the variables once per subscription, not once per event', async () => {
    const { schema, coercions } = fixture();
    const document = parse('subscription S($i: In!) { events(input: $i) { delta } }');
    const out = await results(await subscribeOnce({ schema, document, variableValues: { i: { n: 5, tag: 'x' } } }));
    expect(out).toHaveLength(5);
    expect(coercions()).toBe(1);
    // graphql-js re-coerces on every event: the cost this path removes.
    const before = coercions();
    await results(await subscribe({ schema, document, variableValues: { i: { n: 5, tag: 'x' } } }));
    expect(coercions() - before).toBe(6);
  });

  it('wrong variables: the same error result as graphql-js, before any event', async () => {
    const { schema } = fixture();
    const args = { schema, document: parse('subscription S($i: In!) { events(input: $i) { delta } }'), variableValues: { i: { n: 'many' } } };
    expect(await results(await subscribeOnce(args))).toEqual(await results(await subscribe(args)));
  });

  it('a root field whose resolve is not passEventThrough runs through graphql-js unchanged', async () => {
    const { schema, coercions } = fixture();
    const out = await results(
      await subscribeOnce({ schema, document: parse('subscription S($i: In!) { plain(input: $i) { delta } }'), variableValues: { i: { n: 2, tag: 'x' } } }),
    );
    expect(out).toEqual([{ data: { plain: { delta: 't0' } } }, { data: { plain: { delta: 't1' } } }]);
    expect(coercions()).toBe(3);
  });

  it('return() ends the source stream', async () => {
    const { schema } = fixture();
    const it = (await subscribeOnce({
      schema,
      document: parse('subscription S($i: In!) { events(input: $i) { delta } }'),
      variableValues: { i: { n: 5 } },
    })) as AsyncIterableIterator<ExecutionResult>;
    expect((await it.next()).value).toEqual({ data: { events: { delta: 't0' } } });
    await it.return!();
    expect((await it.next()).done).toBe(true);
  });
});
