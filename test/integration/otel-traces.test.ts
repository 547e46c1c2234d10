import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, startApp, startSim, subscribeAll, TEST_ADMIN_KEY } from '../support/app';
import { until } from '../support/wait';

/**
 * OpenTelemetry traces reach a collector: an in-process OTLP/HTTP receiver (JSON) on port 0 decodes what the
 * gateway exports. One span per request, one per upstream attempt under it, the client's traceparent as parent
 * (HTTP header; graphql-ws: the upgrade request), GenAI attributes, cost and the fallback chain, and no prompt or
 * completion text anywhere in the export.
 */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

let receiver: http.Server;
const bodies: string[] = [];
const spans: OtlpSpan[] = [];
let sim: Simulator;
let app: App;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      if (req.url === '/v1/traces' && req.headers['content-type']?.includes('json')) {
        const msg = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
        for (const rs of msg.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  sim = await startSim(0);
  app = await startApp(
    { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`, OTEL_SERVICE_NAME: 'gateway-under-test' },
    sim,
  );
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});
afterEach(async () => {
  await fetch(`${new URL(sim.url).origin}/__sim/faults`, { method: 'DELETE' });
});

const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
const SECRET = 'ZEBRA-PROMPT-7f3a';
const ask = (profile = 'fast_classify') => ({ input: { profile, maxTokens: 20, messages: [{ role: 'USER', content: `${SECRET} tell me a story` }] } });
const attr = (s: OtlpSpan, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  if ('arrayValue' in v) return ((v.arrayValue as { values?: Array<Record<string, unknown>> }).values ?? []).map((x) => Object.values(x)[0]);
  const raw = Object.values(v)[0];
  return 'intValue' in v ? Number(raw) : raw;
};
async function spansOf(traceId: string, count: number): Promise<OtlpSpan[]> {
  const found = () => spans.filter((s) => s.traceId === traceId);
  await until(() => found().length >= count, `${count} spans of trace ${traceId}`);
  return found();
}

test("a mutation under a client traceparent: a request span under the client's span, an attempt span under it, GenAI usage and cost, no prompt text", async () => {
  const t = await createTenant(app.url);
  const traceId = hex(32);
  const parent = hex(16);
  const r = await gql(app.url, t.key, CHAT, ask(), { traceparent: `00-${traceId}-${parent}-01` });
  expect(r.errors).toBeUndefined();
  const chat = (r.data as any).chat;

  const found = await spansOf(traceId, 2);
  const request = found.find((s) => s.name === 'chat fast_classify')!;
  const attempt = found.find((s) => s.name === `chat ${chat.model}`)!;
  expect(request.parentSpanId).toBe(parent);
  expect(request.kind).toBe(2); // SERVER
  expect(attempt.parentSpanId).toBe(request.spanId);
  expect(attempt.kind).toBe(3); // CLIENT
  expect({
    op: attr(request, 'gen_ai.operation.name'),
    requestModel: attr(request, 'gen_ai.request.model'),
    responseModel: attr(request, 'gen_ai.response.model'),
    input: attr(request, 'gen_ai.usage.input_tokens'),
    output: attr(request, 'gen_ai.usage.output_tokens'),
    system: attr(request, 'gen_ai.system'),
    cost: attr(request, 'llm_gateway.cost_micros'),
    profile: attr(request, 'llm_gateway.profile'),
    outcome: attr(request, 'llm_gateway.outcome'),
    chain: attr(request, 'llm_gateway.fallback_chain'),
    requestId: attr(request, 'llm_gateway.request_id'),
    tenant: attr(request, 'llm_gateway.tenant_id'),
  }).toEqual({
    op: 'chat',
    requestModel: chat.model,
    responseModel: chat.model,
    input: chat.usage.promptTokens,
    output: chat.usage.completionTokens,
    system: 'global-apis',
    cost: Math.round(Number(chat.usage.costUsd) * 1e6),
    profile: 'fast_classify',
    outcome: 'COMPLETED',
    chain: [chat.model],
    requestId: chat.requestId,
    tenant: t.id,
  });
  expect(attr(request, 'llm_gateway.cost_micros')).toBeGreaterThan(0);
  expect({
    op: attr(attempt, 'gen_ai.operation.name'),
    requestModel: attr(attempt, 'gen_ai.request.model'),
    responseModel: attr(attempt, 'gen_ai.response.model'),
    input: attr(attempt, 'gen_ai.usage.input_tokens'),
    output: attr(attempt, 'gen_ai.usage.output_tokens'),
    outcome: attr(attempt, 'llm_gateway.outcome'),
  }).toEqual({
    op: 'chat',
    requestModel: chat.model,
    responseModel: chat.model,
    input: chat.usage.promptTokens,
    output: chat.usage.completionTokens,
    outcome: 'completed',
  });

  // Neither the prompt nor the answer appears anywhere in what was exported.
  const exported = bodies.join('\n');
  expect(exported).toContain(traceId);
  expect(exported).toContain('gateway-under-test');
  expect(exported).not.toContain(SECRET);
  expect(exported).not.toContain('tell me a story');
  expect(chat.content.length).toBeGreaterThan(20);
  expect(exported).not.toContain(chat.content.slice(0, 20));
});

test('a fallback: one span per attempt, the failed one marked with its error, the chain on the request span', async () => {
  const t = await createTenant(app.url);
  await gqlOk(
    app.url,
    TEST_ADMIN_KEY,
    `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "deepseek-v4-flash", fallbacks: ["qwen3-32b"]) { model } }`,
    { t: t.id },
  );
  await fetch(`${new URL(sim.url).origin}/__sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'deepseek-v4-flash', fault: 'http_500', times: 1 }),
  });
  const traceId = hex(32);
  const r = await gql(app.url, t.key, CHAT, ask('chat_default'), { traceparent: `00-${traceId}-${hex(16)}-01` });
  expect((r.data as any).chat.model).toBe('qwen3-32b');
  const found = await spansOf(traceId, 3);
  const request = found.find((s) => s.name === 'chat chat_default')!;
  expect(attr(request, 'llm_gateway.fallback_chain')).toEqual(['deepseek-v4-flash', 'qwen3-32b']);
  expect(attr(request, 'gen_ai.request.model')).toBe('deepseek-v4-flash');
  expect(attr(request, 'gen_ai.response.model')).toBe('qwen3-32b');
  const failed = found.find((s) => s.name === 'chat deepseek-v4-flash')!;
  expect(failed.parentSpanId).toBe(request.spanId);
  expect(failed.status?.code).toBe(2); // ERROR
  expect(attr(failed, 'error.type')).toBe('HTTP_500');
  expect(attr(failed, 'llm_gateway.outcome')).toBe('failed');
  expect(
    attr(
      found.find((s) => s.name === 'chat qwen3-32b')!,
      'llm_gateway.outcome',
    ),
  ).toBe('completed');
});

test("graphql-ws: the traceparent of the connection's upgrade request parents the subscription's spans", async () => {
  const t = await createTenant(app.url);
  const traceId = hex(32);
  const parent = hex(16);
  class TracedWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { headers: { traceparent: `00-${traceId}-${parent}-01` } });
    }
  }
  const ws = createClient({
    url: app.url.replace(/^http/, 'ws'),
    webSocketImpl: TracedWebSocket,
    connectionParams: { authorization: `Bearer ${t.key}` },
    retryAttempts: 0,
    lazy: true,
  });
  try {
    const s = await subscribeAll(ws, CHAT_STREAM, ask());
    expect(s.error).toBeNull();
    const done = s.events.at(-1).chatStream;
    const found = await spansOf(traceId, 2);
    const request = found.find((x) => x.name === 'chat fast_classify')!;
    expect(request.parentSpanId).toBe(parent);
    expect(attr(request, 'llm_gateway.mode')).toBe('stream');
    expect(attr(request, 'llm_gateway.request_id')).toBe(done.requestId);
    expect(attr(request, 'gen_ai.usage.output_tokens')).toBe(done.usage.completionTokens);
    expect(found.find((x) => x.name === `chat ${done.model}`)!.parentSpanId).toBe(request.spanId);
  } finally {
    await ws.dispose();
  }
  expect(bodies.join('\n')).not.toContain(SECRET);
});

test('without a traceparent a request starts its own trace; a refused request is an error span with its code', async () => {
  const t = await createTenant(app.url, { monthlyBudgetUsd: '0' });
  const before = new Set(spans.map((s) => s.spanId));
  const r = await gql(app.url, t.key, CHAT, ask());
  expect(r.errors?.[0]?.extensions?.code).toBe('BUDGET_EXCEEDED');
  const end = Date.now() + 15_000;
  let span: OtlpSpan | undefined;
  while (!(span = spans.find((s) => !before.has(s.spanId) && attr(s, 'llm_gateway.tenant_id') === t.id))) {
    if (Date.now() > end) throw new Error('no span for the refused request');
    await new Promise((res) => setTimeout(res, 50));
  }
  expect(span.parentSpanId ?? '').toBe('');
  expect(span.status?.code).toBe(2);
  expect(attr(span, 'error.type')).toBe('BUDGET_EXCEEDED');
  expect(attr(span, 'llm_gateway.outcome')).toBe('FAILED');
});

test('with tracing on, /v1 still names the request and its rate windows (the traced use case passes the hooks on)', async () => {
  const t = await createTenant(app.url, { requestsPerMinute: 100 });
  const headers = { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' };
  const body = JSON.stringify({ model: 'fast_classify', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] });
  const base = app.url.replace('/graphql', '/v1/chat/completions');
  const plain = await fetch(base, { method: 'POST', headers, body });
  expect(plain.status).toBe(200);
  const answer = (await plain.json()) as { id: string };
  expect(answer.id).toBe(`chatcmpl-${plain.headers.get('x-request-id')}`);
  expect(plain.headers.get('x-ratelimit-remaining-requests')).toBe('99');
  const streamed = await fetch(base, { method: 'POST', headers, body: JSON.stringify({ ...JSON.parse(body), stream: true }) });
  expect(streamed.status).toBe(200);
  await streamed.text();
  expect(streamed.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  expect(streamed.headers.get('x-ratelimit-remaining-requests')).toBe('98');
});
