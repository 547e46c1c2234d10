import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { createTenant, gqlOk, startApp, startSim } from '../support/app';
import { SimClient } from '../support/simulator';
import { until as waitUntil } from '../support/wait';

/**
 * The fault suite through the OpenAI-compatible surface, driven by the simulator's scripted faults: fallback before
 * content, interruption after content (an error event after the delivered, billed content), the whole chain down,
 * and the client going away. Each ends in exactly one settled ledger row, and the tenant's spend equals it.
 */

let sim: Simulator;
let app: App;
let db: Db;
let base: string;
let simc: SimClient;

const ask = [{ role: 'user' as const, content: 'Explain recursion in 200 words' }];
const ME = `query { me { spentThisMonthUsd heldUsd } }`;
const usd = (micros: bigint) => `${micros / 1_000_000n}.${(micros % 1_000_000n).toString().padStart(6, '0')}`;

/** The tenant's rows once `n` are settled (or, after `ms`, as they are: the assertions then say what is off). */
async function settledRows(tenantId: string, n = 1, ms = 5_000) {
  const read = () => db.ledgerEntry.findMany({ where: { tenantId }, orderBy: { id: 'asc' } });
  let rows = await read();
  await waitUntil(async () => (rows = await read()).length === n && rows.every((r) => r.state === 'SETTLED'), `${n} settled rows`, ms, 20).catch(
    () => undefined,
  );
  return rows;
}

/** The ledger row and the tenant's Redis spend agree, and nothing stays held. */
async function spendMatches(t: { id: string; key: string }, costMicros: bigint) {
  expect((await gqlOk(app.url, t.key, ME)).me).toEqual({ spentThisMonthUsd: usd(costMicros), heldUsd: '0.000000' });
}

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  base = app.url.replace(/\/graphql$/, '/v1');
  simc = new SimClient(sim);
});

beforeEach(() => simc.reset());

afterAll(async () => {
  await simc?.close();
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
});

describe('fallback before content', () => {
  it('streamed: the first model fails with 503, the next in the chain answers; one COMPLETED row with both attempts', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: 'deepseek-v4-flash', fault: 'http_503', times: 1 });
    const stream = await new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create({
      model: 'chat_default',
      messages: ask,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(new Set(chunks.map((c) => c.model))).toEqual(new Set(['hunyuan-turbos']));
    expect(chunks[chunks.length - 1]!.usage).toMatchObject({ completion_tokens: 150 });
    const [row] = await settledRows(t.id);
    expect(row).toMatchObject({ outcome: 'COMPLETED', model: 'hunyuan-turbos', plannedModel: 'deepseek-v4-flash' });
    expect((row!.attempts as Array<{ model: string; ok: boolean }>).map((a) => [a.model, a.ok])).toEqual([
      ['deepseek-v4-flash', false],
      ['hunyuan-turbos', true],
    ]);
    expect(chunks[chunks.length - 1]!.usage).toMatchObject({ cost_micros: Number(row!.costMicros) });
    await spendMatches(t, row!.costMicros);
  });

  it('not streamed: a cut after content is discarded and the next model answers; both attempts are billed', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 20, times: 1 });
    const r = await new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create({ model: 'chat_default', messages: ask });
    expect(r.model).toBe('hunyuan-turbos');
    const [row] = await settledRows(t.id);
    expect(row).toMatchObject({ outcome: 'COMPLETED', model: 'hunyuan-turbos', completionTokens: 170 });
    expect((r.usage as unknown as { cost_micros: number }).cost_micros).toBe(Number(row!.costMicros));
    await spendMatches(t, row!.costMicros);
  });

  it('the whole chain down: InternalServerError (502) upstream_unavailable; one FAILED row at $0 per attempt the SDK makes', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: '*', fault: 'http_500', times: 3 });
    const err = await new OpenAI({ apiKey: t.key, baseURL: base, maxRetries: 0 }).chat.completions
      .create({ model: 'chat_default', messages: ask })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(502);
    expect(err.code).toBe('upstream_unavailable');
    const rows = await settledRows(t.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'FAILED', model: null, costMicros: 0n });
    expect(err.requestID).toBe(rows[0]!.requestId);
    await spendMatches(t, 0n);
  });
});

describe('interruption after content', () => {
  it('streamed: the delivered content, its usage chunk, then an error event the SDK raises; billed, one UPSTREAM_INTERRUPTED row', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 20, times: 1 });
    const { data: stream, response } = await new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions
      .create({ model: 'chat_default', messages: ask, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const chunks = [];
    let err: any = null;
    try {
      for await (const c of stream) chunks.push(c);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.code).toBe('upstream_interrupted');
    expect(err.message).toMatch(/delivered and billed/);
    // Chunks follow the upstream's reads (the first token alone, then one chunk per read), so count the words:
    // the simulator's tokens are one word each.
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text.trim().split(/\s+/)).toHaveLength(20);
    // The mid-stream rule: no other model takes over once content was sent.
    expect(new Set(chunks.map((c) => c.model))).toEqual(new Set(['deepseek-v4-flash']));
    const usage = chunks[chunks.length - 1]!.usage as unknown as { completion_tokens: number; cost_micros: number };
    expect(usage.completion_tokens).toBe(20);

    const [row] = await settledRows(t.id);
    expect(row).toMatchObject({ requestId: response.headers.get('x-request-id'), outcome: 'UPSTREAM_INTERRUPTED', completionTokens: 20 });
    expect(row!.costMicros).toBeGreaterThan(0n);
    expect(usage.cost_micros).toBe(Number(row!.costMicros));
    await spendMatches(t, row!.costMicros);
  });
});

describe('client cancellation', () => {
  it('streamed: aborting after some chunks stops the upstream call and settles CLIENT_CANCELLED, billed for what was delivered', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 5, delayMs: 20_000, times: 1 });
    const ac = new AbortController();
    const stream = await new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create(
      { model: 'chat_default', messages: ask, stream: true },
      { signal: ac.signal },
    );
    let seen = 0;
    const ended = (async () => {
      // One chunk per upstream read, not per token: count the words (one per simulator token) delivered so far.
      for await (const c of stream) {
        seen += (c.choices[0]?.delta?.content ?? '').trim().split(/\s+/).filter(Boolean).length;
        if (seen === 5) ac.abort();
      }
    })().catch((e) => e);
    const outcome = await ended;
    expect(outcome === undefined || outcome instanceof OpenAI.APIUserAbortError).toBe(true);
    expect(seen).toBe(5);

    const [row] = await settledRows(t.id);
    expect(row).toMatchObject({ outcome: 'CLIENT_CANCELLED', state: 'SETTLED', completionTokens: 5 });
    expect(row!.costMicros).toBeGreaterThan(0n);
    await spendMatches(t, row!.costMicros);
    // The gateway hung up on the upstream at once instead of waiting out the stall.
    const stats = await simc.waitForStats((s) => s.abortedByClient === 1 && s.openStreams === 0);
    expect(stats).toMatchObject({ abortedByClient: 1, openStreams: 0 });
  });

  it('not streamed: aborting while the upstream stalls settles CLIENT_CANCELLED too', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    await simc.addFault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 5, delayMs: 20_000, times: 1 });
    const ac = new AbortController();
    const pending = new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions
      .create({ model: 'chat_default', messages: ask }, { signal: ac.signal })
      .catch((e) => e);
    await simc.waitForStats((s) => s.openStreams === 1);
    // The stall starts after the fifth token; the row's checkpoint shows when the gateway has read them.
    await settledRowsWhere(t.id, (r) => r.checkpointTokens >= 5 || r.state === 'SETTLED');
    ac.abort();
    expect(await pending).toBeInstanceOf(OpenAI.APIUserAbortError);
    const [row] = await settledRows(t.id);
    expect(row).toMatchObject({ outcome: 'CLIENT_CANCELLED', state: 'SETTLED' });
    await spendMatches(t, row!.costMicros);
    expect((await simc.waitForStats((s) => s.openStreams === 0)).openStreams).toBe(0);
  });
});

describe('Redis unreachable', () => {
  it('fails closed: InternalServerError 503 service_unavailable, no upstream call, no row', async () => {
    const t = await createTenant(app.url);
    // An instance with a Redis of its own (redis-server cannot take port 0), stopped under it.
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      await until(async () => {
        const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        try {
          return await probe.ping().then(
            () => true,
            () => false,
          );
        } finally {
          probe.disconnect();
        }
      });
      const lonely = await startApp({ REDIS_URL: `redis://127.0.0.1:${port}` }, sim);
      try {
        const c = new OpenAI({ apiKey: t.key, baseURL: lonely.url.replace(/\/graphql$/, '/v1'), maxRetries: 0 });
        await c.chat.completions.create({ model: 'fast_classify', messages: ask, max_tokens: 5 });
        server.kill('SIGKILL');
        await until(
          async () =>
            !(await lonely.services.epoch.sync().then(
              () => true,
              () => false,
            )),
        );
        const before = (await simc.stats()).requests['qwen3-8b'] ?? 0;
        for (const stream of [false, true]) {
          const err = await c.chat.completions.create({ model: 'fast_classify', messages: ask, max_tokens: 5, stream }).catch((e) => e);
          expect(err).toBeInstanceOf(OpenAI.InternalServerError);
          expect(err.status).toBe(503);
          expect(err.code).toBe('service_unavailable');
        }
        expect((await simc.stats()).requests['qwen3-8b'] ?? 0).toBe(before);
      } finally {
        await lonely.stop();
      }
    } finally {
      server.kill('SIGKILL');
    }
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });
});

const until = (cond: () => Promise<boolean>, ms = 10_000) => waitUntil(cond, 'the condition', ms);

async function settledRowsWhere(tenantId: string, pred: (r: { checkpointTokens: number; state: string }) => boolean, ms = 5_000) {
  let row: Awaited<ReturnType<typeof db.ledgerEntry.findFirst>> = null;
  await waitUntil(
    async () => (row = await db.ledgerEntry.findFirst({ where: { tenantId } })) !== null && pred(row),
    "the tenant's row to reach the condition",
    ms,
    20,
  );
  return row!;
}
