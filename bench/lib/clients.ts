import { performance } from 'node:perf_hooks';
import { createSseEventDecoder } from '../../src/upstream/sse-events';
import type { UpstreamEvent } from '../../src/upstream/types';
import { Pool, request } from 'undici';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import type { OpSample } from './load';

/** The completion every figure is about: the seed article's prompt, the default chat profile's model and cap. */
export const PROMPT = 'Explain recursion in 200 words';
export const PROFILE = 'chat_default';
export const MODEL = 'deepseek-v4-flash';
export const MAX_TOKENS = 1024;

export const CHAT_DOC = `mutation Chat($input: ChatInput!) { chat(input: $input) { requestId model content usage { promptTokens completionTokens costUsd source } ttftMs totalMs } }`;
export const CHAT_STREAM_DOC = `subscription ChatStream($input: ChatInput!) { chatStream(input: $input) { requestId model delta done outcome usage { promptTokens completionTokens costUsd source } ttftMs } }`;
export const CHAT_INPUT = { profile: PROFILE, messages: [{ role: 'USER', content: PROMPT }], maxTokens: MAX_TOKENS };
const CHAT_BODY = JSON.stringify({ query: CHAT_DOC, operationName: 'Chat', variables: { input: CHAT_INPUT } });

/** The same completion as the gateway asks for, in OpenAI form. */
export function upstreamBody(stream: boolean, model = MODEL, prompt = PROMPT, maxTokens = MAX_TOKENS): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: prompt }],
    max_tokens: maxTokens,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
}

export const pool = (origin: string, connections: number) => new Pool(origin, { connections, keepAliveTimeout: 65_000, pipelining: 1 });

/** A GraphQL request over HTTP; returns the parsed body. */
export async function gqlRequest(graphqlUrl: string, key: string, query: string, variables: Record<string, unknown>): Promise<{ data?: any; errors?: any[] }> {
  const r = await request(graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await r.body.json()) as { data?: any; errors?: any[] };
}

/** A tenant with a big budget and high limits, and its first key, created through the admin API (every check stays on). */
export async function createBenchTenant(graphqlUrl: string, adminKey: string, name: string): Promise<{ id: string; key: string }> {
  const r = await gqlRequest(graphqlUrl, adminKey, `mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } apiKey { key } } }`, {
    input: { name, monthlyBudgetUsd: '1000000', requestsPerMinute: 2_000_000_000, tokensPerMinute: 2_000_000_000 },
  });
  if (r.errors?.length || !r.data) throw new Error(`createTenant failed: ${JSON.stringify(r.errors)}`);
  return { id: r.data.createTenant.tenant.id, key: r.data.createTenant.apiKey.key };
}

/** Non-streamed: the chat mutation through the gateway. */
export function gatewayChatOp(p: Pool, key: string) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
  return async (): Promise<OpSample> => {
    const t = performance.now();
    const r = await p.request({ method: 'POST', path: '/graphql', headers, body: CHAT_BODY });
    const body = (await r.body.json()) as { data?: { chat?: { content?: string } }; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    const ms = performance.now() - t;
    if (r.statusCode !== 200 || body.errors?.length || !body.data?.chat?.content) {
      return { ok: false, ms, error: `HTTP ${r.statusCode} ${body.errors?.[0]?.extensions?.code ?? ''} ${body.errors?.[0]?.message ?? ''}`.trim() };
    }
    return { ok: true, ms };
  };
}

/** Who a /v1/chat/completions request is for: the upstream's model and key, or the gateway's profile and a tenant key. */
export interface V1Target {
  readonly model: string;
  readonly key: string;
}
const UPSTREAM_TARGET: V1Target = { model: MODEL, key: 'bench' };

/** Non-streamed: POST /v1/chat/completions, directly to the simulator, through the bare proxy, or to the gateway's /v1. */
export function completionOp(p: Pool, target: V1Target = UPSTREAM_TARGET) {
  const body = upstreamBody(false, target.model);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${target.key}` };
  return async (): Promise<OpSample> => {
    const t = performance.now();
    const r = await p.request({ method: 'POST', path: '/v1/chat/completions', headers, body });
    const j = (await r.body.json()) as { choices?: Array<{ message?: { content?: string } }> };
    const ms = performance.now() - t;
    if (r.statusCode !== 200 || !j.choices?.[0]?.message?.content) return { ok: false, ms, error: `HTTP ${r.statusCode}` };
    return { ok: true, ms };
  };
}

/**
 * Reads an OpenAI SSE stream: time to the first content token, tokens seen, usage; the whole body is read. `onFirst`
 * is called at the first content token. Only content deltas are counted as tokens (the simulator sends one per chunk).
 */
export async function readSse(
  body: AsyncIterable<Buffer | string>,
  t0: number,
): Promise<{ ttftMs: number | null; tokens: number; done: boolean; completionTokens: number | null }> {
  // The gateway's own decoder (src/upstream/sse-events.ts): chunks split anywhere, comments, [DONE], usage.
  const decoder = createSseEventDecoder();
  let ttftMs: number | null = null;
  let tokens = 0;
  let completionTokens: number | null = null;
  const take = (events: readonly UpstreamEvent[]) => {
    for (const ev of events) {
      if (ev.type === 'usage') completionTokens = ev.completionTokens;
      else if (ev.type === 'delta' || ev.type === 'tool_calls') {
        tokens += 1;
        ttftMs ??= performance.now() - t0;
      }
    }
  };
  for await (const chunk of body) take(decoder.push(chunk));
  take(decoder.end());
  const done = decoder.done;
  return { ttftMs, tokens, done, completionTokens };
}

/** Streamed: time to the first token over SSE (direct or through the proxy); the whole stream is read. */
export function sseOp(p: Pool, body = upstreamBody(true), extraHeaders: Record<string, string> = {}) {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream', authorization: 'Bearer bench', ...extraHeaders };
  return async (): Promise<OpSample> => {
    const t = performance.now();
    const r = await p.request({ method: 'POST', path: '/v1/chat/completions', headers, body });
    if (r.statusCode !== 200) {
      await r.body.dump();
      return { ok: false, ms: performance.now() - t, error: `HTTP ${r.statusCode}` };
    }
    const s = await readSse(r.body, t);
    const ms = performance.now() - t;
    if (s.ttftMs === null || !s.done) return { ok: false, ms, error: 'stream ended without a token or [DONE]' };
    return { ok: true, ms, ttftMs: s.ttftMs };
  };
}

export function wsClient(graphqlUrl: string, key: string): Client {
  return createClient({
    url: graphqlUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => undefined,
  });
}

/** Resolves when the client's socket is open and acknowledged. */
export function connected(c: Client, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('graphql-ws connection not acknowledged in time')), timeoutMs);
    const off1 = c.on('connected', () => {
      clearTimeout(t);
      off1();
      off2();
      resolve();
    });
    const off2 = c.on('closed', (e) => {
      clearTimeout(t);
      off1();
      off2();
      reject(new Error(`graphql-ws closed: ${(e as { code?: number }).code ?? ''}`));
    });
  });
}

export interface StreamHandle {
  /** Resolves at the end of the stream. */
  readonly done: Promise<OpSample & { outcome: string | null; deltas: number }>;
  /** Resolves at the first delta (ms since subscribe), or null if the stream ended first. */
  readonly first: Promise<number | null>;
  cancel(): void;
}

/** Subscribes to chatStream on an open client: first delta and end, timed from the subscribe call. */
export function subscribeChat(c: Client, input: Record<string, unknown> = CHAT_INPUT, onDelta?: () => void): StreamHandle {
  const t = performance.now();
  let ttftMs: number | null = null;
  let deltas = 0;
  let outcome: string | null = null;
  let resolveFirst!: (v: number | null) => void;
  const first = new Promise<number | null>((r) => (resolveFirst = r));
  let cancel = () => {};
  const done = new Promise<OpSample & { outcome: string | null; deltas: number }>((resolve) => {
    cancel = c.subscribe<{ chatStream: { delta: string | null; done: boolean; outcome: string | null } }>(
      { query: CHAT_STREAM_DOC, operationName: 'ChatStream', variables: { input } },
      {
        next: (v) => {
          if (v.errors?.length) {
            resolveFirst(null);
            resolve({
              ok: false,
              ms: performance.now() - t,
              error: `${(v.errors[0] as any)?.extensions?.code ?? ''} ${v.errors[0]!.message}`,
              outcome,
              deltas,
            });
            return;
          }
          const ev = v.data?.chatStream;
          if (!ev) return;
          if (ev.delta) {
            deltas++;
            onDelta?.();
            if (ttftMs === null) {
              ttftMs = performance.now() - t;
              resolveFirst(ttftMs);
            }
          }
          if (ev.done) outcome = ev.outcome;
        },
        error: (e) => {
          resolveFirst(null);
          const msg = Array.isArray(e)
            ? `${(e[0] as any)?.extensions?.code ?? ''} ${(e[0] as any)?.message}`
            : ((e as Error)?.message ?? `closed ${(e as { code?: number })?.code ?? ''}`);
          resolve({ ok: false, ms: performance.now() - t, error: msg, outcome, deltas });
        },
        complete: () => {
          resolveFirst(ttftMs);
          const ms = performance.now() - t;
          if (ttftMs === null || outcome !== 'COMPLETED')
            resolve({ ok: false, ms, error: `stream ended with outcome ${outcome}, ${deltas} deltas`, outcome, deltas });
          else resolve({ ok: true, ms, ttftMs, outcome, deltas });
        },
      },
    );
  });
  return { done, first, cancel: () => cancel() };
}

/** Streamed through the gateway: one open graphql-ws connection per worker, a subscription per operation. */
export function gatewayStreamOp(clients: Client[], input: Record<string, unknown> = CHAT_INPUT) {
  return async (w: number): Promise<OpSample> => subscribeChat(clients[w]!, input).done;
}
