import {
  GraphQLError,
  GraphQLSchema,
  Kind,
  createSourceEventStream,
  execute,
  getNamedType,
  getOperationAST,
  isNonNullType,
  isObjectType,
  subscribe,
  visit,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type GraphQLObjectType,
  type VariableDefinitionNode,
} from 'graphql';

/** A Subscription field's resolve that hands each event on as the field's value: what the fast path requires. */
export const passEventThrough = <T>(event: T): T => event;

/** How one subscription's events are executed: built once, when it starts. */
interface EventPlan {
  readonly schema: GraphQLSchema;
  readonly document: DocumentNode;
  readonly responseKey: string;
  readonly nonNull: boolean;
}

/** Per schema and event type: a schema whose query root is the event type, so an event runs as a query on it. */
const eventSchemas = new WeakMap<GraphQLSchema, Map<string, GraphQLSchema>>();

/**
 * graphql-js's `subscribe`, with the subscription's execution built once instead of on every event. graphql-js 16
 * runs `execute` per event on the whole operation: it re-coerces every variable (a chat's whole input, messages
 * included) and re-collects the root field. Here the source stream is created once (variables coerced once, the
 * subscribe resolver called once), and each event executes only the root field's selection, as a query against a
 * schema whose root is the event's type, with just the variables that selection uses. Results and errors have the
 * same shape and paths as graphql-js's. An operation outside the fast path's shape (directives or fragments at the
 * root, a root field whose resolve is not `passEventThrough`) runs through graphql-js's `subscribe` unchanged.
 */
export async function subscribeOnce(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const plan = planEvents(args);
  if (!plan) return subscribe(args);
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source;
  const it = source[Symbol.asyncIterator]();
  const run = async (event: unknown): Promise<ExecutionResult> => {
    const r = await execute({ ...args, schema: plan.schema, document: plan.document, operationName: undefined, rootValue: event });
    const data = r.data === null && plan.nonNull ? null : { [plan.responseKey]: r.data ?? null };
    return r.errors?.length ? { data, errors: r.errors.map((e) => underKey(e, plan.responseKey)) } : { data };
  };
  const mapped: AsyncIterableIterator<ExecutionResult> = {
    next: async () => {
      const step = await it.next();
      return step.done ? step : { done: false, value: await run(step.value) };
    },
    return: async (value?: unknown) => {
      await it.return?.(value);
      return { done: true, value: undefined };
    },
    throw: async (e?: unknown) => {
      if (!it.throw) throw e;
      await it.throw(e);
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => mapped,
  };
  return mapped;
}

function planEvents(args: ExecutionArgs): EventPlan | null {
  const operation = getOperationAST(args.document, args.operationName);
  const root = args.schema.getSubscriptionType();
  if (!operation || operation.operation !== 'subscription' || !root) return null;
  const [field, ...more] = operation.selectionSet.selections;
  if (!field || more.length > 0 || field.kind !== Kind.FIELD || field.directives?.length || !field.selectionSet) return null;
  const def = root.getFields()[field.name.value];
  const eventType = def && getNamedType(def.type);
  if (!def || def.resolve !== passEventThrough || !isObjectType(eventType)) return null;
  const fragments = args.document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION);
  const document: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation: 'query' as never,
        variableDefinitions: usedVariables(field, fragments, operation.variableDefinitions ?? []),
        selectionSet: field.selectionSet,
      },
      ...fragments,
    ],
  };
  return { schema: eventSchema(args.schema, eventType), document, responseKey: field.alias?.value ?? field.name.value, nonNull: isNonNullType(def.type) };
}

function eventSchema(schema: GraphQLSchema, type: GraphQLObjectType): GraphQLSchema {
  let byType = eventSchemas.get(schema);
  if (!byType) eventSchemas.set(schema, (byType = new Map()));
  let s = byType.get(type.name);
  if (!s) byType.set(type.name, (s = new GraphQLSchema({ query: type, directives: schema.getDirectives() })));
  return s;
}

/** The variable definitions the event's selection (and the fragments) refer to: the only ones coerced per event. */
function usedVariables(field: FieldNode, fragments: readonly object[], defs: readonly VariableDefinitionNode[]): VariableDefinitionNode[] {
  const names = new Set<string>();
  const collect = (node: object) =>
    visit(node as FieldNode, {
      Variable: (v) => {
        names.add(v.name.value);
      },
    });
  collect(field.selectionSet!);
  for (const f of fragments) collect(f);
  return defs.filter((d) => names.has(d.variable.name.value));
}

function underKey(e: GraphQLError, key: string): GraphQLError {
  return new GraphQLError(e.message, {
    nodes: e.nodes,
    source: e.source,
    positions: e.positions,
    path: [key, ...(e.path ?? [])],
    originalError: e.originalError,
    extensions: e.extensions,
  });
}
