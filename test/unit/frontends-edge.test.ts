import { makeOriginPolicy, upgradeAllowed } from '../../src/server/cors';
import { transportFor } from '../../src/server/http-streams';
import { loadConfig } from '../../src/config';
import type { IncomingMessage } from 'node:http';

describe('transportFor: the subscription transport from the Accept header', () => {
  it.each([
    ['text/event-stream', 'sse'],
    ['application/graphql-response+json, application/json, text/event-stream, multipart/mixed', 'sse'], // urql
    ['text/event-stream, multipart/mixed', 'sse'], // urql, subscriptions
    ['multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9', 'multipart'], // Apollo Client 4
    ['multipart/mixed;subscriptionSpec="1.0"', 'multipart'],
    ['multipart/mixed;deferSpec=20220824, application/json', null], // @defer, not a subscription
    ['application/json', null],
    ['*/*', null],
    [undefined, null],
  ])('%s -> %s', (accept, expected) => {
    expect(transportFor(accept)).toBe(expected);
  });
});

describe('origin policy', () => {
  const req = (origin: string | undefined, host = 'gw.example.com') => ({ headers: { origin, host } }) as unknown as IncomingMessage;

  it('development default (null): any localhost origin, http or https, any port; nothing else', () => {
    const allowed = makeOriginPolicy(null);
    for (const o of ['http://localhost:5173', 'https://localhost', 'http://127.0.0.1:3000', 'http://[::1]:8080']) expect(allowed(o)).toBe(true);
    for (const o of ['http://localhost.evil.com', 'https://example.com', 'null', 'http://localhost:5173/path']) expect(allowed(o)).toBe(false);
  });

  it('a list: exactly those origins (case-insensitive), localhost no longer; empty: none', () => {
    const allowed = makeOriginPolicy(['https://app.example.com']);
    expect(allowed('https://APP.example.com')).toBe(true);
    expect(allowed('http://localhost:5173')).toBe(false);
    expect(makeOriginPolicy([])('http://localhost')).toBe(false);
  });

  it('the WebSocket upgrade: no Origin (not a browser) and the page’s own origin pass', () => {
    const none = makeOriginPolicy([]);
    expect(upgradeAllowed(none, req(undefined))).toBe(true);
    expect(upgradeAllowed(none, req('https://gw.example.com'))).toBe(true);
    expect(upgradeAllowed(none, req('https://evil.example'))).toBe(false);
  });

  it('CORS_ORIGINS in config: a list of origins; unset means localhost outside production and none in it; a path or * is refused naming the variable', () => {
    const base = { ADMIN_API_KEY: 'x'.repeat(32) };
    expect(loadConfig({ ...base, CORS_ORIGINS: 'https://a.example, http://localhost:5173' }).corsOrigins).toEqual([
      'https://a.example',
      'http://localhost:5173',
    ]);
    expect(loadConfig({ ...base }).corsOrigins).toBeNull();
    expect(loadConfig({ ...base, NODE_ENV: 'production' }).corsOrigins).toEqual([]);
    expect(() => loadConfig({ ...base, CORS_ORIGINS: '*' })).toThrow(/CORS_ORIGINS/);
    expect(() => loadConfig({ ...base, CORS_ORIGINS: 'https://a.example/app' })).toThrow(/CORS_ORIGINS/);
    expect(() => loadConfig({ ...base, STREAM_HEARTBEAT_MS: '60000' })).toThrow(/STREAM_HEARTBEAT_MS/);
  });
});
