import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { CHAT_STREAM, createTenant, gql, hello, startApp, startSim, TEST_ADMIN_KEY, wsClient } from '../support/app';
import { until as waitUntil } from '../support/wait';

/** gateway_open_streams must come back to zero however a stream ends, or it lies to whoever alerts on it. */
let sim: Simulator;
let app: App;
beforeAll(async () => {
  sim = await startSim(0.5); // deepseek-v4-flash: ~1.3 s per answer
  app = await startApp({}, sim);
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
});

async function openStreams(): Promise<number> {
  const text = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
  const m = /^gateway_open_streams (\d+)/m.exec(text);
  if (!m) throw new Error('gateway_open_streams missing');
  return Number(m[1]);
}

const until = (cond: () => Promise<boolean>, ms = 10_000) => waitUntil(cond, 'the condition', ms);

test('open streams count up while streaming and back to zero after completion, unsubscribe and a dropped socket', async () => {
  const t = await createTenant(app.url);
  expect(await openStreams()).toBe(0);

  // Completed normally.
  const a = wsClient(app.url, t.key);
  await new Promise<void>((resolve, reject) =>
    a.subscribe({ query: CHAT_STREAM, variables: hello('chat_default', { maxTokens: 20 }) }, { next: () => undefined, error: reject, complete: resolve }),
  );
  await until(async () => (await openStreams()) === 0);

  // Unsubscribed mid-stream, and a socket dropped mid-stream.
  const b = wsClient(app.url, t.key);
  const c = wsClient(app.url, t.key);
  let firstB = false;
  let firstC = false;
  const unsubscribeB = b.subscribe(
    { query: CHAT_STREAM, variables: hello() },
    { next: () => void (firstB = true), error: () => undefined, complete: () => undefined },
  );
  c.subscribe({ query: CHAT_STREAM, variables: hello() }, { next: () => void (firstC = true), error: () => undefined, complete: () => undefined });
  await until(async () => firstB && firstC);
  expect(await openStreams()).toBe(2);
  unsubscribeB();
  await c.dispose(); // closes the socket under an open subscription
  await until(async () => (await openStreams()) === 0);
  await Promise.all([a.dispose(), b.dispose()]);
});

test('requests refused before authentication are counted and logged, not invisible', async () => {
  const metric = async () => {
    const text = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
    const m = /^gateway_auth_refusals_total\{code="UNAUTHENTICATED"\} (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const before = await metric();
  const r = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
    body: JSON.stringify({ query: '{ me { id } }' }),
  });
  expect(r.status).toBe(401);
  expect(await metric()).toBe(before + 1);
});

test('tenants (admin) pages by name; first outside 1..500 is BAD_USER_INPUT', async () => {
  await createTenant(app.url, { name: `00-page-a-${Date.now()}` });
  await createTenant(app.url, { name: `00-page-b-${Date.now()}` });
  const one = await gql(app.url, TEST_ADMIN_KEY, `{ tenants(first: 1) { name } }`);
  expect(one.data?.tenants).toHaveLength(1);
  const next = await gql(app.url, TEST_ADMIN_KEY, `query($a: String) { tenants(first: 1, after: $a) { name } }`, { a: one.data!.tenants[0].name });
  expect(next.data!.tenants[0].name > one.data!.tenants[0].name).toBe(true);
  const bad = await gql(app.url, TEST_ADMIN_KEY, `{ tenants(first: 501) { name } }`);
  expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  expect(bad.errors?.[0]?.message).toMatch(/^first: /);
});
