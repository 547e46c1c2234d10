import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createTenant, startApp, startSim } from '../support/app';

/**
 * /graphql answers a JSON POST without express (src/server/graphql-http.ts) and everything else through express.
 * Each case below goes both ways, the express way forced by a content-type parameter the fast path leaves to
 * express, and must get the same answer: status, code, CORS and request-id headers.
 */
let sim: Simulator;
let app: App;
let key: string;
beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({ MAX_REQUEST_BYTES: '1024' }, sim);
  key = (await createTenant(app.url)).key;
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
});

const WAYS = { 'fast path': 'application/json', express: 'application/json; profile=express' } as const;

async function post(way: keyof typeof WAYS, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(app.url, { method: 'POST', headers: { 'content-type': WAYS[way], authorization: `Bearer ${key}`, ...headers }, body });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: JSON.parse(text) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> },
  };
}

describe.each(Object.keys(WAYS) as Array<keyof typeof WAYS>)('%s', (way) => {
  it('a query: 200 with its data, the client X-Request-Id echoed, an allowed origin echoed with Vary: Origin', async () => {
    const r = await post(way, JSON.stringify({ query: '{ me { id } }' }), { 'x-request-id': 'fast-path-1', origin: 'http://localhost:5173' });
    expect(r.status).toBe(200);
    expect(r.json.data.me.id).toEqual(expect.any(String));
    expect(r.headers.get('x-request-id')).toBe('fast-path-1');
    expect(r.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(r.headers.get('access-control-expose-headers')).toBe('Retry-After, X-Request-Id');
    expect(r.headers.get('vary')).toMatch(/origin/i);
    expect(r.headers.get('content-type')).toMatch(/^application\/(graphql-response\+)?json/);
  });

  it('a foreign origin gets no CORS header; a request id that is not a plain token is replaced', async () => {
    const r = await post(way, JSON.stringify({ query: '{ me { id } }' }), { origin: 'https://evil.example', 'x-request-id': 'has spaces' });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['malformed JSON', '{"query": "{ me { id } }"'],
    ['JSON that is not an object', '"{ me { id } }"'],
  ])('%s: 400 BAD_REQUEST naming the body, not 500', async (_name, body) => {
    const r = await post(way, body);
    expect(r.status).toBe(400);
    expect(r.json.errors![0]!.extensions!.code).toBe('BAD_REQUEST');
    expect(r.json.errors![0]!.message).toMatch(/not valid JSON/);
  });

  it('a body over the limit (MAX_REQUEST_BYTES + 64 KiB): 413 PAYLOAD_TOO_LARGE naming it, with the request id', async () => {
    const r = await post(way, JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(70_000) } }));
    expect(r.status).toBe(413);
    expect(r.json.errors![0]!.extensions!.code).toBe('PAYLOAD_TOO_LARGE');
    expect(r.json.errors![0]!.message).toMatch(/66560 bytes/);
    expect(r.headers.get('x-request-id')).toEqual(expect.any(String));
  });

  it('an empty body: 400 from Apollo, never 500', async () => {
    const r = await post(way, '');
    expect(r.status).toBe(400);
  });

  it('no key: 401 UNAUTHENTICATED', async () => {
    const res = await fetch(app.url, { method: 'POST', headers: { 'content-type': WAYS[way] }, body: JSON.stringify({ query: '{ me { id } }' }) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });
});
