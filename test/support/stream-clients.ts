import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client as UrqlClient, cacheExchange, fetchExchange } from '@urql/core';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { pipe, subscribe as wonkaSubscribe, onEnd } from 'wonka';
import WebSocket from 'ws';

/**
 * The frontends' real clients at their default settings, behind one small interface so a test can run the same
 * scenario on each transport. Only what a client must be told is set: the URL, the key, Node's WebSocket, and for
 * urql `fetchSubscriptions` (its fetch exchange leaves subscriptions to a subscription exchange otherwise).
 */
export type CodedError = { message: string; extensions?: Record<string, unknown> };
export interface Sink {
  next(data: any): void;
  /** Coded GraphQL errors, or the client's own error (a network error) as one entry without a code. */
  error(errors: CodedError[]): void;
  complete(): void;
}
export interface StreamClient {
  readonly name: ClientName;
  readonly transport: 'graphql-ws' | 'sse' | 'multipart';
  /** Starts an operation; the returned function ends it (the client goes away). */
  subscribe(query: string, variables: Record<string, unknown>, sink: Sink): () => void;
  dispose(): Promise<void>;
}
export type ClientName = 'apollo-http' | 'apollo-ws' | 'graphql-sse' | 'urql';
export const CLIENT_NAMES: readonly ClientName[] = ['apollo-http', 'apollo-ws', 'graphql-sse', 'urql'];

const coded = (e: unknown): CodedError[] => {
  const x = e as { errors?: CodedError[]; graphQLErrors?: CodedError[]; message?: string; code?: number; reason?: string };
  if (Array.isArray(e)) return e as CodedError[];
  // A WebSocket close (graphql-ws): its reason starts with the code.
  if (typeof x?.code === 'number' && typeof x.reason === 'string')
    return [{ message: x.reason, extensions: { code: x.reason.split(':')[0], closeCode: x.code } }];
  if (x?.graphQLErrors?.length) return x.graphQLErrors.map((g) => ({ message: g.message, extensions: g.extensions }));
  // Apollo's GraphQLWsLink turns a close into an Error naming the code and reason.
  const closed = /^Socket closed with event (\d+) (\w+):/.exec(x?.message ?? '');
  if (closed) return [{ message: x.message!, extensions: { code: closed[2], closeCode: Number(closed[1]) } }];
  if (Array.isArray(x?.errors) && x.errors.length) return x.errors.map((g) => ({ message: g.message, extensions: g.extensions }));
  return [{ message: x?.message ?? String(e) }];
};

function apollo(link: ApolloLink, name: ClientName, transport: StreamClient['transport']): StreamClient {
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return {
    name,
    transport,
    subscribe(query, variables, sink) {
      let ended = false;
      const s = client.subscribe({ query: apolloGql(query), variables }).subscribe({
        next: (r) => {
          if (ended) return;
          if (r.error) {
            ended = true;
            sink.error(coded(r.error));
          } else sink.next(r.data);
        },
        error: (e) => {
          if (!ended) sink.error(coded(e));
          ended = true;
        },
        complete: () => {
          if (!ended) sink.complete();
          ended = true;
        },
      });
      return () => s.unsubscribe();
    },
    async dispose() {
      client.stop();
    },
  };
}

export function makeStreamClient(name: ClientName, httpUrl: string, key: string | null): StreamClient {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const wsUrl = httpUrl.replace(/^http/, 'ws');
  switch (name) {
    case 'apollo-http':
      return apollo(new HttpLink({ uri: httpUrl, headers }), name, 'multipart');
    case 'apollo-ws': {
      // GraphQLWsLink reads the global WebSocket (as in a browser); Node 20 has none.
      (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
      const ws = createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: key ? { authorization: `Bearer ${key}` } : {} });
      const c = apollo(new GraphQLWsLink(ws), name, 'graphql-ws');
      return { ...c, dispose: async () => (await c.dispose(), await ws.dispose()) };
    }
    case 'graphql-sse': {
      const sse = createSseClient({ url: httpUrl, headers });
      return {
        name,
        transport: 'sse',
        subscribe(query, variables, sink) {
          let ended = false;
          return sse.subscribe(
            { query, variables },
            {
              next: (v) => {
                if (ended) return;
                if (v.errors?.length) {
                  ended = true;
                  sink.error(coded(v.errors));
                } else sink.next(v.data);
              },
              error: (e) => {
                if (!ended) sink.error(coded(e));
                ended = true;
              },
              complete: () => {
                if (!ended) sink.complete();
                ended = true;
              },
            },
          );
        },
        async dispose() {
          sse.dispose();
        },
      };
    }
    case 'urql': {
      const client = new UrqlClient({ url: httpUrl, exchanges: [cacheExchange, fetchExchange], fetchSubscriptions: true, fetchOptions: { headers } });
      return {
        name,
        transport: 'sse',
        subscribe(query, variables, sink) {
          let ended = false;
          // urql re-emits the last result once more when an event stream ends (a merged {hasNext: false}), with the
          // same data object: a frontend sees it as no change; here it is skipped so events count once.
          let last: unknown;
          const { unsubscribe } = pipe(
            client.subscription(query, variables),
            onEnd(() => {
              if (!ended) sink.complete();
              ended = true;
            }),
            wonkaSubscribe((r) => {
              if (ended) return;
              if (r.error) {
                ended = true;
                sink.error(r.error.graphQLErrors.length ? coded(r.error) : [{ message: r.error.message }]);
              } else if (r.data && r.data !== last) sink.next((last = r.data));
            }),
          );
          return unsubscribe;
        },
        async dispose() {},
      };
    }
  }
}

/** Runs one operation to its end on `client`: the data of each event, and the errors it ended with (or null). */
export function collect(client: StreamClient, query: string, variables: Record<string, unknown>): Promise<{ events: any[]; errors: CodedError[] | null }> {
  return new Promise((resolve) => {
    const events: any[] = [];
    client.subscribe(query, variables, {
      next: (d) => events.push(d),
      error: (errors) => resolve({ events, errors }),
      complete: () => resolve({ events, errors: null }),
    });
  });
}
