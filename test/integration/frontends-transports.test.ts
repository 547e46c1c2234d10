import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, createTenant, gqlOk, hello, startApp, startSim } from '../support/app';
import { CLIENT_NAMES, collect, makeStreamClient, type ClientName, type StreamClient } from '../support/stream-clients';

/**
 * One table-driven suite over the three subscription transports, each driven by the real client a frontend would
 * use at its default settings: Apollo Client 4 with HttpLink alone (multipart subscriptions) and with GraphQLWsLink
 * (graphql-ws), graphql-sse's own client (SSE) and urql core (SSE through its fetch exchange). Each streams a
 * completion, sees the done event with its cost and coded errors, and the fault tests that used to run on
 * graphql-ws only (client goes away, upstream cuts the stream) run on each. Apollo's InMemoryCache warnings (and
 * any other console warning or error) fail the test.
 */

let sim: Simulator;
let app: App;
let db: Db;
const open: StreamClient[] = [];
const client = (name: ClientName, key: string | null, url = app.url) => {
  const c = makeStreamClient(name, url, key);
  open.push(c);
  return c;
};

const consoleCalls: unknown[][] = [];
const spies: jest.SpyInstance[] = [];
beforeEach(() => {
  consoleCalls.length = 0;
  for (const m of ['warn', 'error'] as const) spies.push(jest.spyOn(console, m).mockImplementation((...a: unknown[]) => void consoleCalls.push([m, ...a])));
});
afterEach(async () => {
  for (const s of spies.splice(0)) s.mockRestore();
  for (const c of open.splice(0)) await c.dispose();
  expect(consoleCalls).toEqual([]);
});

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
});

const STREAM_WITH_COST = `subscription Stream($input: ChatInput!) { chatStream(input: $input) { requestId model delta done outcome usage { completionTokens costUsd } } }`;

describe.each(CLIENT_NAMES)('%s', (name) => {
  it('streams a completion: several deltas, then one done event with outcome and cost; the ledger row is settled', async () => {
    const t = await createTenant(app.url);
    const { events, errors } = await collect(client(name, t.key), STREAM_WITH_COST, hello());
    expect(errors).toBeNull();
    const evs = events.map((e) => e.chatStream);
    expect(evs.length).toBeGreaterThan(2);
    const done = evs.at(-1);
    expect(done).toMatchObject({ done: true, outcome: 'COMPLETED', model: 'deepseek-v4-flash', usage: { completionTokens: 150, costUsd: '0.000038' } });
    expect(evs.filter((e) => e.done)).toHaveLength(1);
    expect(
      evs
        .slice(0, -1)
        .map((e) => e.delta)
        .join('').length,
    ).toBeGreaterThan(50);
    const row = await db.ledgerEntry.findUnique({ where: { requestId: done.requestId } });
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'COMPLETED', state: 'SETTLED', costMicros: 38n });
  });

  it('a bad key: UNAUTHENTICATED within two seconds, nothing recorded', async () => {
    const started = Date.now();
    const { events, errors } = await collect(client(name, 'sk_not_a_key'), STREAM_WITH_COST, hello());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(events).toEqual([]);
    expect(errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('an exhausted budget: BUDGET_EXCEEDED, no content', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '0.000001' });
    const { events, errors } = await collect(client(name, t.key), STREAM_WITH_COST, hello());
    expect(events).toEqual([]);
    expect(errors?.[0]?.extensions?.code).toBe('BUDGET_EXCEEDED');
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
  });

  it('a rate limit: RATE_LIMITED with retryAfterMs', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
    const { events, errors } = await collect(client(name, t.key), STREAM_WITH_COST, hello());
    expect(events).toEqual([]);
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
  });

  it('bad input: BAD_USER_INPUT naming the field', async () => {
    const t = await createTenant(app.url);
    const { events, errors } = await collect(client(name, t.key), STREAM_WITH_COST, hello('no_such_profile'));
    expect(events).toEqual([]);
    expect(errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(errors?.[0]?.message).toMatch(/profile/);
  });

  it('an upstream cut mid-stream: a done event UPSTREAM_INTERRUPTED, charged for what was delivered', async () => {
    const t = await createTenant(app.url);
    await fetch(new URL(sim.url).origin + '/__sim/faults', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen3-8b', fault: 'cut', afterTokens: 20, times: 1 }),
    });
    const { events, errors } = await collect(client(name, t.key), STREAM_WITH_COST, hello('fast_classify', { maxTokens: 40 }));
    expect(errors).toBeNull();
    expect(events.at(-1).chatStream).toMatchObject({ done: true, outcome: 'UPSTREAM_INTERRUPTED', usage: { completionTokens: 20 } });
  });
});

describe.each(CLIENT_NAMES)('%s, the client goes away mid-stream', (name) => {
  let slowSim: Simulator;
  let slowApp: App;
  beforeAll(async () => {
    slowSim = await startSim(0.6);
    slowApp = await startApp({}, slowSim);
  });
  afterAll(async () => {
    await slowApp?.stop();
    await slowSim?.close();
  });
  const simStats = async () => (await (await fetch(new URL(slowSim.url).origin + '/__sim/stats')).json()) as { openStreams: number; abortedByClient: number };

  it('stops the upstream at once and settles CLIENT_CANCELLED for what was delivered', async () => {
    const t = await createTenant(slowApp.url);
    const before = await simStats();
    const c = client(name, t.key, slowApp.url);
    const seen: any[] = [];
    await new Promise<void>((resolve, reject) => {
      const stop = c.subscribe(STREAM_WITH_COST, hello(), {
        next: (d) => {
          seen.push(d.chatStream);
          if (seen.length === 3) {
            setImmediate(stop); // outside the client's own callback, as a UI's Stop button would
            resolve();
          }
        },
        error: (e) => reject(new Error(JSON.stringify(e))),
        complete: () => undefined,
      });
    });
    const requestId = seen[0].requestId;
    const settled = await waitFor(async () => {
      const s = await simStats();
      const row = await db.ledgerEntry.findUnique({ where: { requestId } });
      return s.abortedByClient === before.abortedByClient + 1 && s.openStreams === 0 && row?.state === 'SETTLED' ? row : null;
    }, 5_000);
    expect(settled).toMatchObject({ tenantId: t.id, outcome: 'CLIENT_CANCELLED', state: 'SETTLED' });
    expect(settled!.completionTokens).toBeGreaterThanOrEqual(3);
    expect(settled!.completionTokens).toBeLessThan(150);
    // The hold is released and what was delivered is charged.
    const me = (await gqlOk(slowApp.url, t.key, `{ me { heldUsd spentThisMonthUsd } }`)).me;
    expect(me.heldUsd).toBe('0.000000');
    expect(me.spentThisMonthUsd).not.toBe('0.000000');
  });
});

async function waitFor<T>(probe: () => Promise<T>, ms: number, every = 25): Promise<T> {
  const until = Date.now() + ms;
  let v = await probe();
  while (!v && Date.now() < until) {
    await new Promise((r) => setTimeout(r, every));
    v = await probe();
  }
  return v;
}
