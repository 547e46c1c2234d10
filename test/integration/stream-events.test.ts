import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, CHAT_STREAM, createTenant, gql, hello, startApp, startSim, subscribeAll, wsClient } from '../support/app';
import { collect, makeStreamClient, type ClientName, type StreamClient } from '../support/stream-clients';

/**
 * How chatStream cuts an answer into events: the first token alone, at once; later tokens one event per upstream
 * network read; ChatInput.flushMs for coarser events. The simulator runs at 0.05 of real pace (deepseek-v4-flash:
 * about a millisecond a token), so its 150 tokens arrive over many reads. Each simulator token is one word with a
 * leading space.
 */
let sim: Simulator;
let app: App;
let db: Db;
const open: StreamClient[] = [];
const client = (name: ClientName, key: string) => {
  const c = makeStreamClient(name, app.url, key);
  open.push(c);
  return c;
};

beforeAll(async () => {
  sim = await startSim(0.05);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.dispose();
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
});

type Ev = { delta: string | null; done: boolean; usage: { promptTokens: number; completionTokens: number; costUsd: string } | null };
const stream = async (name: ClientName, key: string, extra: Record<string, unknown> = {}): Promise<Ev[]> => {
  const { events, errors } = await collect(client(name, key), CHAT_STREAM, hello('chat_default', extra));
  expect(errors).toBeNull();
  return events.map((e: { chatStream: Ev }) => e.chatStream);
};
const text = (evs: readonly Ev[]) => evs.map((e) => e.delta ?? '').join('');
const TOKEN = /^ [a-z]+$/;

describe.each(['apollo-ws', 'graphql-sse'] as const)('%s', (name) => {
  it('the first token goes out alone; later events carry whole reads; the text and usage are the whole answer', async () => {
    const t = await createTenant(app.url);
    const evs = await stream(name, t.key);
    const content = evs.filter((e) => !e.done);
    expect(content[0]!.delta).toMatch(TOKEN);
    expect(text(content).split(' ')).toHaveLength(151); // 150 words, each after a space
    expect(evs.at(-1)).toMatchObject({ done: true, usage: { completionTokens: 150 } });
  });

  it('flushMs: fewer events, the same concatenated text and the same usage', async () => {
    const t = await createTenant(app.url);
    const perRead = await stream(name, t.key);
    const coarse = await stream(name, t.key, { flushMs: 1000 });
    const content = coarse.filter((e) => !e.done);
    expect(content[0]!.delta).toMatch(TOKEN);
    expect(content.length).toBeLessThan(perRead.length - 1);
    expect(text(coarse)).toBe(text(perRead));
    expect(coarse.at(-1)!.usage).toEqual(perRead.at(-1)!.usage);
  });
});

describe('flushMs’s wrong values', () => {
  const refused = async (key: string, flushMs: unknown) => {
    const c = wsClient(app.url, key);
    try {
      const r = await subscribeAll(c, CHAT_STREAM, hello('chat_default', { flushMs }));
      expect(r.events).toEqual([]);
      return r.error as { message: string; extensions: { code: string; field?: string } }[];
    } finally {
      await c.dispose();
    }
  };

  it('out of range, or on the chat mutation: BAD_USER_INPUT naming flushMs; nothing written, nothing counted', async () => {
    // One request a minute: a refused request that counted would leave no room for the good one at the end.
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    for (const bad of [-1, 1001]) {
      const [e] = await refused(t.key, bad);
      expect(e!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'flushMs' });
      expect(e!.message).toContain('from 0 to 1000');
    }
    const [notInt] = await refused(t.key, 2.5);
    expect(notInt!.message).toMatch(/Int/);
    const onMutation = await gql(app.url, t.key, CHAT, hello('chat_default', { flushMs: 50 }));
    expect(onMutation.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'flushMs' } });
    expect(onMutation.errors?.[0]?.message).toContain('chatStream only');

    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
    const ok = await stream('graphql-sse', t.key, { flushMs: 0 });
    expect(ok.at(-1)).toMatchObject({ done: true, usage: { completionTokens: 150 } });
  });
});
