import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { Client as UrqlClient, cacheExchange, fetchExchange } from '@urql/core';
import { collect, makeStreamClient } from '../support/stream-clients';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, hello, startApp, startSim, subscribeAll, TEST_ADMIN_KEY } from '../support/app';
import { until } from '../support/wait';

/**
 * The HTTP edge a browser frontend meets: CORS and the WebSocket's Origin check, the transport picked from Accept,
 * the streaming headers and heartbeats, the coded 400 for a subscription that cannot stream, Retry-After, and the
 * graphql-ws per-connection cap and parse-after-auth rule.
 */
let sim: Simulator;
let app: App;
let prodApp: App;
beforeAll(async () => {
  sim = await startSim(0.3);
  app = await startApp({ STREAM_HEARTBEAT_MS: '150', SUBSCRIPTIONS_PER_CONNECTION: '2' }, sim);
  prodApp = await startApp({ CORS_ORIGINS: 'https://app.example.com' }, sim);
});
afterAll(async () => {
  await app?.stop();
  await prodApp?.stop();
  await sim?.close();
});

const ME = '{ me { id } }';

describe('CORS', () => {
  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('development default: a localhost origin is echoed (never *), with the asked headers; responses expose Retry-After and X-Request-Id', async () => {
    const res = await preflight(app.url, 'http://localhost:5173');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
    const t = await createTenant(app.url);
    const r = await fetch(app.url, {
      method: 'POST',
      headers: { origin: 'http://127.0.0.1:3000', 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: ME }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:3000');
    expect(r.headers.get('access-control-expose-headers')).toBe('Retry-After, X-Request-Id');
    expect(r.headers.get('x-request-id')).toMatch(/^[\w-]+$/);
  });

  it('an origin not allowed: the preflight is 403 naming CORS_ORIGINS, and no CORS header is sent', async () => {
    const res = await preflight(app.url, 'https://evil.example');
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(((await res.json()) as any).errors[0].message).toMatch(/CORS_ORIGINS/);
  });

  it('CORS_ORIGINS set: only the listed origins, localhost no longer', async () => {
    expect((await preflight(prodApp.url, 'https://app.example.com')).headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect((await preflight(prodApp.url, 'http://localhost:5173')).status).toBe(403);
  });

  it('the WebSocket upgrade checks a browser Origin against the same list; no Origin (not a browser) and the page’s own origin pass', async () => {
    const t = await createTenant(prodApp.url);
    const wsUrl = prodApp.url.replace(/^http/, 'ws');
    const opened = (origin?: string) =>
      new Promise<number | 'open'>((resolve) => {
        const ws = new WebSocket(wsUrl, 'graphql-transport-ws', origin ? { origin } : {});
        ws.on('open', () => (ws.close(), resolve('open')));
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => undefined);
      });
    expect(await opened('https://evil.example')).toBe(403);
    expect(await opened('http://localhost:5173')).toBe(403);
    expect(await opened('https://app.example.com')).toBe('open');
    expect(await opened(new URL(prodApp.url).origin)).toBe('open');
    expect(await opened()).toBe('open');
    void t;
  });
});

describe('the transport comes from the request', () => {
  it('a subscription without a streaming Accept header: a coded 400 naming the transports', async () => {
    const t = await createTenant(app.url);
    const r = await gql(app.url, t.key, CHAT_STREAM, hello());
    expect(r.status).toBe(400);
    expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_REQUEST', transports: ['graphql-ws', 'sse', 'multipart'] });
    expect(r.errors?.[0]?.message).toMatch(/text\/event-stream/);
  });

  it('queries and mutations answer JSON even when Accept lists streaming types among JSON ones (urql’s list)', async () => {
    const t = await createTenant(app.url);
    const accept = 'application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed';
    const q = await fetch(app.url, {
      method: 'POST',
      headers: { accept, 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: ME }),
    });
    expect(q.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(((await q.json()) as any).data.me.id).toBe(t.id);
    const m = await fetch(app.url, {
      method: 'POST',
      headers: { accept, 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: CHAT, variables: hello('fast_classify', { maxTokens: 5 }) }),
    });
    expect(m.headers.get('content-type')).toMatch(/json/);
    expect(((await m.json()) as any).data.chat.requestId).toEqual(expect.any(String));
  });

  it('urql with its defaults: queries go as GET without a content type, pass CSRF prevention (they carry the key) and answer JSON', async () => {
    const t = await createTenant(app.url);
    const seen: string[] = [];
    const client = new UrqlClient({
      url: app.url,
      exchanges: [cacheExchange, fetchExchange],
      fetchOptions: { headers: { authorization: `Bearer ${t.key}` } },
      fetch: (input, init) => (seen.push(`${init?.method ?? 'GET'} ${new Headers(init?.headers).get('content-type') ?? '-'}`), fetch(input, init)),
    });
    const r = await client.query(ME, {}).toPromise();
    expect(r.error).toBeUndefined();
    expect(r.data.me.id).toBe(t.id);
    expect(seen).toEqual(['GET -']);
  });

  it('a client that accepts only text/event-stream (graphql-sse) gets a query as an event stream; a mutation over GET is 405', async () => {
    const t = await createTenant(app.url);
    const c = makeStreamClient('graphql-sse', app.url, t.key);
    try {
      expect(await collect(c, ME, {})).toEqual({ events: [{ me: { id: t.id } }], errors: null });
    } finally {
      await c.dispose();
    }
    const get = await fetch(`${app.url}?query=${encodeURIComponent(CHAT)}&variables=${encodeURIComponent(JSON.stringify(hello()))}`, {
      headers: { accept: 'text/event-stream, application/json', authorization: `Bearer ${t.key}` },
    });
    expect(get.status).toBe(405);
  });

  it('SSE and multipart streams: no-cache, no-transform; X-Accel-Buffering: no; no compression; heartbeats while the upstream is silent', async () => {
    const t = await createTenant(app.url);
    const fault = { model: 'qwen3-8b', fault: 'stall', afterTokens: 2, delayMs: 700, times: 1 };
    for (const [accept, beat] of [
      ['text/event-stream', ':\n\n'],
      [
        'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json',
        '\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{}',
      ],
    ] as const) {
      await fetch(new URL(sim.url).origin + '/__sim/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(fault) });
      const res = await fetch(app.url, {
        method: 'POST',
        headers: { accept, 'accept-encoding': 'gzip, br', 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
        body: JSON.stringify({ query: CHAT_STREAM, variables: hello('fast_classify', { maxTokens: 20 }) }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-cache, no-transform');
      expect(res.headers.get('x-accel-buffering')).toBe('no');
      expect(res.headers.get('content-encoding')).toBeNull();
      const body = await res.text();
      // 700 ms of upstream silence after the second token, heartbeats every 150 ms.
      const silence = body.slice(body.indexOf('requestId'), body.indexOf('"done":true'));
      expect(silence.split(beat).length - 1).toBeGreaterThanOrEqual(2);
      expect(body).toMatch(/"done":true/);
    }
  });

  it('a client that accepts JSON gets a refusal before the stream as its HTTP status, with Retry-After on 429', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
    const res = await fetch(app.url, {
      method: 'POST',
      headers: {
        accept: 'multipart/mixed;subscriptionSpec="1.0",application/graphql-response+json',
        'content-type': 'application/json',
        authorization: `Bearer ${t.key}`,
      },
      body: JSON.stringify({ query: CHAT_STREAM, variables: hello() }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('RATE_LIMITED');
    const bad = await fetch(app.url, {
      method: 'POST',
      headers: { accept: 'text/event-stream, application/json', 'content-type': 'application/json' },
      body: JSON.stringify({ query: CHAT_STREAM, variables: hello() }),
    });
    expect(bad.status).toBe(401);
    // The mutation's 429 carries Retry-After too.
    const m = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: CHAT, variables: hello() }),
    });
    expect(m.status).toBe(429);
    expect(Number(m.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

describe('metrics on the HTTP streaming transports', () => {
  it('each operation is counted once by name and code, as on graphql-ws and plain HTTP', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    const post = (accept: string, name: string) =>
      fetch(app.url, {
        method: 'POST',
        headers: { accept, 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
        body: JSON.stringify({
          query: `subscription ${name}($input: ChatInput!) { chatStream(input: $input) { done } }`,
          variables: hello('fast_classify', { maxTokens: 3 }),
        }),
      }).then((r) => r.text());
    await post('text/event-stream', 'SseProbe');
    await post('multipart/mixed;subscriptionSpec="1.0",application/json', 'MultipartProbe');
    const metrics = await (await fetch(app.url.replace(/\/graphql$/, '/metrics'))).text();
    expect(metrics).toContain('gateway_graphql_operations_total{operation="SseProbe",code="OK"} 1');
    expect(metrics).toContain('gateway_graphql_operations_total{operation="MultipartProbe",code="RATE_LIMITED"} 1');
  });
});

describe('a client that goes away before the first event', () => {
  it.each([
    ['SSE', 'text/event-stream'],
    ['multipart', 'multipart/mixed;subscriptionSpec="1.0",application/json'],
  ])('%s: the request still settles, nothing stays held', async (_name, accept) => {
    const t = await createTenant(app.url);
    // deepseek-r1 as the only model: 800 ms to the first token at scale 0.3 = 240 ms; the client leaves at 100 ms.
    await gqlOk(
      app.url,
      TEST_ADMIN_KEY,
      `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "fast_classify", model: "deepseek-r1", fallbacks: []) { model } }`,
      { t: t.id },
    );
    const ac = new AbortController();
    const res = fetch(app.url, {
      method: 'POST',
      signal: ac.signal,
      headers: { accept, 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: CHAT_STREAM, variables: hello('fast_classify', { maxTokens: 50 }) }),
    });
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await expect(res).rejects.toThrow();
    const ME_HELD = `{ me { heldUsd } requests(first: 5) { outcome } }`;
    let state: any;
    const settled = async () => {
      state = await gqlOk(app.url, t.key, ME_HELD);
      return state.requests.length === 1 && state.requests[0].outcome !== null && state.me.heldUsd === '0.000000';
    };
    await until(settled, 'the cancelled request to settle', 5_000).catch(() => undefined);
    expect(state.requests).toEqual([{ outcome: 'CLIENT_CANCELLED' }]);
    expect(state.me.heldUsd).toBe('0.000000');
  });
});

describe('graphql-ws connection rules', () => {
  it('at most SUBSCRIPTIONS_PER_CONNECTION operations at once; the next is RATE_LIMITED (limit SUBSCRIPTIONS, retryAfterMs 1000)', async () => {
    const t = await createTenant(app.url);
    const client = createClient({
      url: app.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${t.key}` },
      retryAttempts: 0,
    });
    try {
      const long = hello('long_form', { maxTokens: 200 });
      const running = [subscribeAll(client, CHAT_STREAM, long), subscribeAll(client, CHAT_STREAM, long)];
      const third = await subscribeAll(client, CHAT_STREAM, long);
      expect(third.events).toEqual([]);
      expect(third.error?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'SUBSCRIPTIONS', retryAfterMs: 1000 });
      for (const r of await Promise.all(running)) expect(r.error).toBeNull();
      // Finished ones free their places.
      expect((await subscribeAll(client, ME, {})).error).toBeNull();
    } finally {
      await client.dispose();
    }
  });

  it('a document is parsed only after the key is checked: a revoked key gets UNAUTHENTICATED, not a parse error', async () => {
    const t = await createTenant(app.url);
    const client = createClient({
      url: app.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${t.key}` },
      retryAttempts: 0,
      lazy: false,
    });
    try {
      expect((await subscribeAll(client, ME, {})).error).toBeNull();
      await gqlOk(app.url, TEST_ADMIN_KEY, `mutation($id: ID!) { revokeApiKey(id: $id) }`, { id: t.keyId });
      const r = await subscribeAll(client, '{ me { id ', {});
      expect(r.error?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await client.dispose();
    }
  });
});
