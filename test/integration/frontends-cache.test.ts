import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { monthOf } from '../../src/accounting/period';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, createTenant, gql as post, gqlOk, hello, startApp, startSim, TEST_ADMIN_KEY } from '../support/app';
import { collect, makeStreamClient } from '../support/stream-clients';

/**
 * The schema a normalising cache needs: ids on the objects clients keep, the tenant's spend after a chat and on the
 * done event (so `me` is current without a refetch), and Relay connections that never return more than `first`
 * and page stably over rows with equal timestamps. Apollo's InMemoryCache warnings fail the test.
 */
let sim: Simulator;
let app: App;
let db: Db;
const consoleCalls: unknown[][] = [];
const spies: jest.SpyInstance[] = [];
beforeEach(() => {
  consoleCalls.length = 0;
  for (const m of ['warn', 'error'] as const) spies.push(jest.spyOn(console, m).mockImplementation((...a: unknown[]) => void consoleCalls.push([m, ...a])));
});
afterEach(() => {
  for (const s of spies.splice(0)) s.mockRestore();
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

const apollo = (key: string) =>
  new ApolloClient({ link: new HttpLink({ uri: app.url, headers: { authorization: `Bearer ${key}` } }), cache: new InMemoryCache() });
const ME = gql`
  query Me {
    me {
      id
      spentThisMonthUsd
    }
  }
`;

describe('Apollo InMemoryCache', () => {
  it('a chat mutation that selects tenant updates the cached `me` without a refetch', async () => {
    const t = await createTenant(app.url);
    const client = apollo(t.key);
    expect(((await client.query({ query: ME })).data as any).me.spentThisMonthUsd).toBe('0.000000');
    const r = await client.mutate({
      mutation: gql`
        mutation Chat($input: ChatInput!) {
          chat(input: $input) {
            id
            requestId
            content
            usage {
              costUsd
            }
            tenant {
              id
              spentThisMonthUsd
            }
          }
        }
      `,
      variables: hello(),
    });
    const chat = (r.data as any).chat;
    expect(chat.id).toBe(chat.requestId);
    expect(chat.tenant.spentThisMonthUsd).toBe(chat.usage.costUsd);
    expect((client.readQuery({ query: ME }) as any).me.spentThisMonthUsd).toBe(chat.usage.costUsd);
  });

  it('the done event carries the tenant after the request; content events carry none', async () => {
    const t = await createTenant(app.url);
    const c = makeStreamClient('apollo-http', app.url, t.key);
    try {
      const { events, errors } = await collect(
        c,
        `subscription S($input: ChatInput!) { chatStream(input: $input) { id requestId done usage { costUsd } tenant { id spentThisMonthUsd heldUsd } } }`,
        hello(),
      );
      expect(errors).toBeNull();
      const evs = events.map((e) => e.chatStream);
      expect(evs.slice(0, -1).every((e) => e.tenant === null && e.id === e.requestId)).toBe(true);
      const done = evs.at(-1);
      expect(done.tenant).toEqual({ __typename: 'Tenant', id: t.id, spentThisMonthUsd: done.usage.costUsd, heldUsd: '0.000000' });
    } finally {
      await c.dispose();
    }
  });

  it('every object a frontend caches has an id: profiles, requests, a request, cost report, overrides', async () => {
    const t = await createTenant(app.url);
    await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
    await gqlOk(app.url, TEST_ADMIN_KEY, `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_speed", model: "qwen3-8b") { model } }`, {
      t: t.id,
    });
    const client = apollo(t.key);
    const { data } = await client.query({
      query: gql`
        query All($month: String!) {
          me {
            id
            name
          }
          profiles {
            id
            name
            model
          }
          asia: profiles(region: ASIA) {
            id
            name
            model
          }
          requests(first: 5) {
            id
            requestId
            outcome
          }
          costReport(month: $month, groupBy: MODEL) {
            id
            totalUsd
            rows {
              key
              costUsd
            }
          }
          profileOverrides {
            id
            profile
            model
          }
          apiKeys {
            id
            prefix
          }
        }
      `,
      variables: { month: monthOf(new Date()) },
    });
    const d = data as any;
    expect(new Set(d.profiles.map((p: any) => p.id)).size).toBe(5);
    expect(d.profiles[0].id).not.toBe(d.asia[0].id);
    expect(d.requests[0].id).toBe(d.requests[0].requestId);
    expect(d.costReport.id).toBe(`${t.id}:${monthOf(new Date())}:MODEL`);
    expect(d.profileOverrides[0].id).toBe(`${t.id}:chat_speed:ALL`);
    const one = await client.query({
      query: gql`
        query R($id: ID!) {
          request(id: $id) {
            id
            outcome
          }
        }
      `,
      variables: { id: d.requests[0].id },
    });
    expect((one.data as any).request.id).toBe(d.requests[0].id);
  });
});

describe('Relay connections', () => {
  const Q = `query P($first: Int, $after: String) { requestsConnection(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`;

  it('requestsConnection: never more than `first`, stable over equal timestamps, every row exactly once', async () => {
    const t = await createTenant(app.url);
    for (let i = 0; i < 7; i++) await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 3 }));
    // Five of the seven share one start time: the contract's `requests(before:)` pages can overflow there.
    const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, orderBy: { id: 'asc' } });
    await db.ledgerEntry.updateMany({ where: { id: { in: rows.slice(1, 6).map((r) => r.id) } }, data: { startedAt: new Date('2026-11-01T00:00:00.000Z') } });
    const seen: string[] = [];
    let after: string | null = null;
    for (let n = 0; n < 10; n++) {
      const page: any = (await gqlOk(app.url, t.key, Q, { first: 2, after })).requestsConnection;
      expect(page.edges.length).toBeLessThanOrEqual(2);
      seen.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    const now = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
    const expected = now.sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || Number(b.id - a.id)).map((r) => r.requestId);
    expect(seen).toEqual(expected);
  });

  it('a cursor the API did not give out, or first out of range: BAD_USER_INPUT naming the argument', async () => {
    const t = await createTenant(app.url);
    const bad = await post(app.url, t.key, Q, { first: 2, after: 'not-a-cursor' });
    expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    const big = await post(app.url, t.key, Q, { first: 501 });
    expect(big.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  });

  it('tenantsConnection and auditLogConnection page the same way (admin only)', async () => {
    const a = await createTenant(app.url);
    const names = new Set<string>();
    let after: string | null = null;
    let pages = 0;
    do {
      const p: any = (
        await gqlOk(
          app.url,
          TEST_ADMIN_KEY,
          `query T($after: String) { tenantsConnection(first: 50, after: $after) { edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }`,
          { after },
        )
      ).tenantsConnection;
      expect(p.edges.length).toBeLessThanOrEqual(50);
      for (const e of p.edges) names.add(e.node.id);
      after = p.pageInfo.hasNextPage ? p.pageInfo.endCursor : null;
      pages++;
    } while (after && pages < 100);
    expect(names.has(a.id)).toBe(true);
    expect(names.size).toBe(await db.tenant.count());
    const audit: any = (
      await gqlOk(
        app.url,
        TEST_ADMIN_KEY,
        `query A($t: ID) { auditLogConnection(tenantId: $t, first: 1) { edges { node { id action } } pageInfo { hasNextPage } } }`,
        { t: a.id },
      )
    ).auditLogConnection;
    // createTenant writes two records in one transaction (same createdAt): the later id comes first.
    expect(audit.edges).toEqual([{ node: { id: expect.any(String), action: 'createApiKey' } }]);
    expect(audit.pageInfo.hasNextPage).toBe(true);
    const refused = await post(app.url, a.key, `{ tenantsConnection(first: 1) { edges { cursor } } }`);
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
