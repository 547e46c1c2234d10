import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config';
import { buildApp, type App, type BuildOptions } from '../../src/app';
import { createLogger } from '../../src/infra/logger';
import { startSimulator, type Simulator } from '../../src/simulator/server';
import { TEST_ADMIN_KEY, TEST_DATABASE_URL, TEST_REDIS_CLUSTER_NODES, TEST_REDIS_URL } from './env';

export { TEST_ADMIN_KEY };

/** Env for an app instance against the test services; `sim` makes it use a shared simulator (to read its stats). */
export function testEnv(extra: Record<string, string | undefined> = {}, sim?: Simulator): NodeJS.ProcessEnv {
  return {
    NODE_ENV: 'test',
    PORT: '0',
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    // On the test cluster unless the test brings a Redis of its own.
    ...(TEST_REDIS_CLUSTER_NODES && !('REDIS_URL' in extra) ? { REDIS_CLUSTER_NODES: TEST_REDIS_CLUSTER_NODES } : {}),
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SIM_LATENCY_SCALE: '0',
    // Every test file fails authentications from 127.0.0.1 into the same Redis: only edge-auth tests the limit.
    AUTH_FAILURES_PER_MINUTE: '1000000',
    ...(sim ? { GLOBAL_API_KEY: 'sim-key', GLOBAL_API_BASE_URL: sim.url } : {}),
    ...extra,
  };
}

/** A real app instance on port 0 with real Postgres, Redis and a simulator. */
export async function startApp(extra: Record<string, string | undefined> = {}, sim?: Simulator, opts: BuildOptions = {}): Promise<App> {
  const config = loadConfig(testEnv(extra, sim));
  return buildApp(config, { host: '127.0.0.1', logger: createLogger(config.LOG_LEVEL), ...opts });
}

export const startSim = (latencyScale = 0) => startSimulator({ port: 0, latencyScale });

export interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  data: T | null | undefined;
  errors: Array<{ message: string; extensions?: Record<string, unknown>; path?: unknown[] }> | undefined;
}

/** A GraphQL request over real HTTP. `key` null sends no Authorization header. */
export async function gql<T = Record<string, any>>(
  url: string,
  key: string | null,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: GqlResponse['errors'] };
  return { status: res.status, data: body.data, errors: body.errors };
}

/** Like gql, but fails the test on any error; returns data. */
export async function gqlOk<T = Record<string, any>>(url: string, key: string | null, query: string, variables?: Record<string, unknown>): Promise<T> {
  const r = await gql<T>(url, key, query, variables);
  if (r.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
  return r.data as T;
}

export function wsClient(httpUrl: string, key: string | null): Client {
  return createClient({
    url: httpUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: key ? { authorization: `Bearer ${key}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

/** Collects every event of one subscription until it completes or errors. */
export function subscribeAll<T = any>(client: Client, query: string, variables: Record<string, unknown>): Promise<{ events: T[]; error: any }> {
  return new Promise((resolve) => {
    const events: T[] = [];
    client.subscribe<T>(
      { query, variables },
      {
        next: (v) => {
          if (v.errors) resolve({ events, error: v.errors });
          else events.push(v.data as T);
        },
        error: (error) => resolve({ events, error }),
        complete: () => resolve({ events, error: null }),
      },
    );
  });
}

let counter = 0;
export const uniqueName = (p = 't') => `${p}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`;

export const CREATE_TENANT = `mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id name monthlyBudgetUsd requestsPerMinute tokensPerMinute } apiKey { id key } } }`;

/** Creates a tenant through the API; returns its id and first key. */
export async function createTenant(url: string, input: Record<string, unknown> = {}): Promise<{ id: string; key: string; keyId: string }> {
  const d = await gqlOk<any>(url, TEST_ADMIN_KEY, CREATE_TENANT, { input: { name: uniqueName(), ...input } });
  return { id: d.createTenant.tenant.id, key: d.createTenant.apiKey.key, keyId: d.createTenant.apiKey.id };
}

export const CHAT = `mutation($input: ChatInput!) { chat(input: $input) { requestId model content usage { promptTokens completionTokens costUsd source } ttftMs totalMs attempts { model ok error latencyMs } } }`;
export const CHAT_STREAM = `subscription($input: ChatInput!) { chatStream(input: $input) { requestId model delta done outcome usage { promptTokens completionTokens costUsd source } ttftMs attempts { model ok error latencyMs } } }`;

export const hello = (profile = 'chat_default', extra: Record<string, unknown> = {}) => ({
  input: { profile, messages: [{ role: 'USER', content: 'Explain recursion in 200 words' }], ...extra },
});
