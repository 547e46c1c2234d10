import { performance } from 'node:perf_hooks';
import {
  GraphQLError,
  execute,
  getOperationAST,
  type DocumentNode,
  type ExecutionResult,
  type FormattedExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { Logger } from '../infra/logger';
import type { GraphQLContext } from '../graphql/context';
import { statusFor } from '../graphql/errors';
import { subscribeOnce } from '../graphql/subscription-execution';
import type { ContextBuilder } from './context-builder';
import type { DocumentCache } from './document-cache';
import type { Metrics } from './metrics';
import { makeOperationRecorder } from './operation-log';

/**
 * The one path behind the HTTP streaming transports (GraphQL over SSE, Apollo's multipart subscriptions): the same
 * context builder (authentication, epoch), the same document cache and armor rules as graphql-ws, the same
 * resolvers (admission, ledger, outcomes live in the chat use case), the same error mask, log line and metrics.
 *
 * Errors are split by when they happen. Before the stream (bad key, bad document, bad variables, refused by the
 * gate before any content): a `Refusal` with the contract's HTTP status, which the transport sends as a status and a
 * JSON body, or as its protocol's error event for a client that accepts no JSON. During the stream: an event with
 * `errors`, then the end.
 */
export type Refusal = { readonly kind: 'refused'; readonly status: number; readonly errors: readonly GraphQLFormattedError[]; readonly retryAfterMs?: number };

export interface StreamRequest {
  readonly query: unknown;
  readonly variables: unknown;
  readonly operationName: unknown;
  readonly authorization: unknown;
  readonly requestId: string;
  /** The TCP peer: failed authentications are rate-limited per address. */
  readonly clientAddress: string | undefined;
  /** Aborted when the client goes away: stops the upstream call; the request settles CLIENT_CANCELLED. */
  readonly signal: AbortSignal;
  readonly transport: 'sse' | 'multipart';
}

export interface Prepared {
  readonly kind: 'prepared';
  readonly context: GraphQLContext;
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  readonly request: StreamRequest;
}

export type Streamed =
  | { readonly kind: 'single'; readonly result: FormattedExecutionResult }
  | {
      readonly kind: 'stream';
      readonly results: AsyncGenerator<FormattedExecutionResult>;
      /** Ends the stream whether or not `results` was ever iterated (a generator never started skips its finally). */
      readonly close: () => Promise<void>;
    };

export interface StreamOperationsOptions {
  readonly schema: GraphQLSchema;
  readonly buildContext: ContextBuilder;
  readonly documents: DocumentCache;
  readonly formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

const badRequest = (message: string): Refusal => ({ kind: 'refused', status: 400, errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });

export function makeStreamOperations(o: StreamOperationsOptions) {
  const format = (e: unknown): GraphQLFormattedError => {
    const g =
      e instanceof GraphQLError ? e : new GraphQLError(e instanceof Error ? e.message : String(e), { originalError: e instanceof Error ? e : undefined });
    return o.formatError(g.toJSON(), g);
  };
  const formatResult = (r: ExecutionResult): FormattedExecutionResult =>
    r.errors?.length ? { ...r, errors: r.errors.map(format) } : (r as FormattedExecutionResult);

  const recorder = makeOperationRecorder(o.metrics);
  const record = (name: string, log: Logger, transport: string, startedAt: number, errors: readonly GraphQLFormattedError[] | undefined) =>
    recorder({ name, log, transport, startedAt, errors });

  const refuse = (errors: readonly GraphQLFormattedError[], fallbackStatus: number): Refusal => {
    const retry = errors.find((e) => typeof e.extensions?.retryAfterMs === 'number')?.extensions?.retryAfterMs as number | undefined;
    return { kind: 'refused', status: statusFor(errors) ?? fallbackStatus, errors, ...(retry !== undefined ? { retryAfterMs: retry } : {}) };
  };

  /** Authenticates, then (and only then) parses and validates the document and picks its operation. */
  async function prepare(r: StreamRequest): Promise<Prepared | Refusal> {
    const at = performance.now();
    const name = typeof r.operationName === 'string' ? r.operationName : 'anonymous';
    const malformed = malformedRequest(r);
    if (malformed) return malformed;
    let context: GraphQLContext;
    try {
      context = await o.buildContext({ authorization: r.authorization, signal: r.signal, requestId: r.requestId, clientAddress: r.clientAddress });
    } catch (e) {
      return refuse([format(e)], 500); // refusals before authentication are counted and logged by the builder
    }
    const checked = o.documents.check(r.query as string); // a non-empty string: malformedRequest checked it
    const refused = (x: Refusal) => (record(name, context.log, r.transport, at, x.errors), x);
    if ('parseError' in checked)
      return refused({ kind: 'refused', status: 400, errors: [{ message: checked.parseError, extensions: { code: 'GRAPHQL_PARSE_FAILED' } }] });
    if (checked.errors.length) return refused({ kind: 'refused', status: 400, errors: checked.errors.map(format) });
    const operation = getOperationAST(checked.document, (r.operationName as string | undefined) ?? undefined);
    if (!operation) return refused(badRequest('operationName must name one operation of the document (required when it has several)'));
    return { kind: 'prepared', context, document: checked.document, operation, request: r };
  }

  /**
   * Runs a prepared operation. A subscription's first event is awaited before anything is sent, so a refusal by the
   * gate (RATE_LIMITED, BUDGET_EXCEEDED...) or a chain that delivered nothing still gets its HTTP status.
   */
  async function run(p: Prepared): Promise<Streamed | Refusal> {
    const at = performance.now();
    const { context, document, operation, request: r } = p;
    const name = operation.name?.value ?? (typeof r.operationName === 'string' ? r.operationName : 'anonymous');
    const args = {
      schema: o.schema,
      document,
      variableValues: (r.variables as Record<string, unknown> | null) ?? undefined,
      operationName: (r.operationName as string | null) ?? undefined,
      contextValue: context,
    };
    if (operation.operation !== 'subscription') {
      const result = formatResult(await execute(args));
      record(name, context.log, r.transport, at, result.errors);
      return { kind: 'single', result };
    }
    const subscribed = await subscribeOnce(args);
    if (!(Symbol.asyncIterator in subscribed)) {
      // Variables that do not fit their types, and errors the subscribe resolver throws synchronously.
      const errors = (subscribed.errors ?? []).map(format);
      record(name, context.log, r.transport, at, errors);
      return refuse(errors, 400);
    }
    let first: IteratorResult<ExecutionResult>;
    try {
      first = await subscribed.next();
    } catch (e) {
      const errors = [format(e)];
      record(name, context.log, r.transport, at, errors);
      return refuse(errors, 200);
    }
    o.metrics.openStreams.inc();
    let recorded = false;
    const end = (errors?: readonly GraphQLFormattedError[]) => {
      if (recorded) return;
      recorded = true;
      o.metrics.openStreams.dec();
      record(name, context.log, r.transport, at, errors);
    };
    return { kind: 'stream', ...relayStream(subscribed, first, { format, formatResult }, end) };
  }

  return { prepare, run };
}

export type StreamOperations = ReturnType<typeof makeStreamOperations>;

/** The request's own shape, checked before authentication: nothing is parsed for a request that cannot run. */
function malformedRequest(r: StreamRequest): Refusal | null {
  if (typeof r.query !== 'string' || r.query.length === 0) return badRequest('the request needs a GraphQL document in "query" (a non-empty string)');
  if (r.variables != null && (typeof r.variables !== 'object' || Array.isArray(r.variables))) return badRequest('"variables" must be a JSON object');
  if (r.operationName != null && typeof r.operationName !== 'string') return badRequest('"operationName" must be a string');
  return null;
}

interface Formatting {
  format(e: unknown): GraphQLFormattedError;
  formatResult(r: ExecutionResult): FormattedExecutionResult;
}

/**
 * A subscription's results from its already awaited first event on, formatted; `end` runs exactly once, when the
 * stream ends or is closed (even if it never started).
 */
function relayStream(
  sub: AsyncGenerator<ExecutionResult> | AsyncIterableIterator<ExecutionResult>,
  first: IteratorResult<ExecutionResult>,
  f: Formatting,
  end: (errors?: readonly GraphQLFormattedError[]) => void,
): { results: AsyncGenerator<FormattedExecutionResult>; close: () => Promise<void> } {
  // The transport ends this generator on a client that went away by aborting the request's signal (which stops
  // the upstream at once, so the pending next() below resolves) and then calling return().
  let started = false;
  async function* relay(): AsyncGenerator<FormattedExecutionResult> {
    started = true;
    let errors: readonly GraphQLFormattedError[] | undefined;
    try {
      let step = first;
      while (!step.done) {
        const out = f.formatResult(step.value);
        errors ??= out.errors;
        yield out;
        try {
          step = await sub.next();
        } catch (e) {
          errors = [f.format(e)];
          yield { errors };
          return;
        }
      }
    } finally {
      end(errors);
      if (typeof sub.return === 'function') await sub.return(undefined);
    }
  }
  const results = relay();
  const close = async () => {
    if (started) {
      await results.return(undefined);
      return;
    }
    await results.return(undefined); // marks it finished, so it never starts later
    end();
    if (typeof sub.return === 'function') await sub.return(undefined);
  };
  return { results, close };
}
