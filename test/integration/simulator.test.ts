import { MODEL_TABLE } from '../../src/catalog/model-table';
import { startSimulator, type Simulator } from '../../src/simulator/server';
import { AUTH, chunksOf, contentEvents, countingTimers, SimClient } from '../support/simulator';

const messages = [
  { role: 'system', content: 'You are terse.' }, // 14 chars -> 4 + 4
  { role: 'user', content: 'Hello there, simulator!' }, // 23 chars -> 6 + 4
];
const PROMPT_TOKENS = 18;

const chatBody = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages, ...extra });

describe('simulator at latency scale 0', () => {
  let sim: Simulator;
  let client: SimClient;
  const timers = countingTimers();

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, latencyScale: 0, timers });
    client = new SimClient(sim);
  });
  afterAll(async () => {
    await client.close();
    await sim.close();
  });
  beforeEach(() => client.reset());

  it('serves on 127.0.0.1 with the /v1 base URL', () => {
    expect(sim.url).toBe(`http://127.0.0.1:${sim.port}/v1`);
    expect(sim.port).toBeGreaterThan(0);
  });

  describe('serving', () => {
    it('lists the 15 models of the model table in OpenAI list format', async () => {
      const r = await client.json('GET', '/v1/models', undefined, AUTH);
      expect(r.status).toBe(200);
      const body = JSON.parse(r.text);
      expect(body.object).toBe('list');
      expect(body.data.map((m: { id: string }) => m.id)).toEqual(MODEL_TABLE.map((m) => m.id));
      expect(body.data).toHaveLength(15);
      for (const m of body.data) expect(m).toMatchObject({ object: 'model', owned_by: expect.any(String) });
    });

    it.each([
      ['no Authorization header', {}],
      ['an empty bearer token', { authorization: 'Bearer ' }],
      ['a non-bearer scheme', { authorization: 'Basic abc' }],
    ])('answers 401 with an OpenAI error body for %s', async (_, headers) => {
      const chat = await client.chat(chatBody('glm-5'), headers);
      const models = await client.json('GET', '/v1/models', undefined, headers);
      for (const r of [chat, models]) {
        expect(r.status).toBe(401);
        expect(JSON.parse(r.text)).toEqual({
          error: { message: expect.stringContaining('API key'), type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
        });
      }
      expect((await client.stats()).requests).toEqual({});
    });

    it('answers 404 with an OpenAI error body for an unknown model, and does not count it', async () => {
      const r = await client.chat(chatBody('gpt-17'));
      expect(r.status).toBe(404);
      expect(JSON.parse(r.text)).toEqual({
        error: { message: expect.stringContaining('gpt-17'), type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
      });
      expect((await client.stats()).requests).toEqual({});
    });

    it.each([
      ['invalid JSON', '{"model": "glm-5", '],
      ['a JSON array', '[]'],
      ['no model', JSON.stringify({ messages })],
      ['no messages', JSON.stringify({ model: 'glm-5' })],
      ['empty messages', JSON.stringify({ model: 'glm-5', messages: [] })],
      ['a message without role', JSON.stringify({ model: 'glm-5', messages: [{ content: 'hi' }] })],
      ['max_tokens 0', JSON.stringify(chatBody('glm-5', { max_tokens: 0 }))],
      ['a non-boolean stream', JSON.stringify(chatBody('glm-5', { stream: 'yes' }))],
    ])('answers 400 with an OpenAI error body for %s', async (_, raw) => {
      const r = await client.chat(raw);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error).toMatchObject({ type: 'invalid_request_error', message: expect.any(String) });
    });

    it('answers a non-streamed request with 150 tokens, the prompt count of the formula and usage', async () => {
      const r = await client.chat(chatBody('glm-5'));
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/application\/json/);
      const body = JSON.parse(r.text);
      expect(body).toMatchObject({ object: 'chat.completion', model: 'glm-5', id: expect.stringMatching(/^chatcmpl-/) });
      expect(body.choices).toHaveLength(1);
      expect(body.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant' } });
      const content: string = body.choices[0].message.content;
      expect(content.match(/ \w+/g)).toHaveLength(150);
      expect(content).toMatch(/^( [a-z]+){150}$/);
      expect(body.usage).toEqual({ prompt_tokens: PROMPT_TOKENS, completion_tokens: 150, total_tokens: PROMPT_TOKENS + 150 });
    });

    it('counts ceil(chars / 4) + 4 per message, text parts included', async () => {
      const r = await client.chat({
        model: 'qwen3-8b',
        messages: [
          { role: 'user', content: 'a' }, // 1 + 4
          {
            role: 'user',
            content: [
              { type: 'text', text: '12345678' },
              { type: 'text', text: '9' },
            ],
          }, // 9 chars: 3 + 4
          { role: 'assistant', content: null }, // 0 + 4
        ],
      });
      expect(JSON.parse(r.text).usage.prompt_tokens).toBe(5 + 7 + 4);
    });

    it('stops at max_tokens when it is smaller than 150, and at 150 otherwise', async () => {
      const short = JSON.parse((await client.chat(chatBody('glm-5', { max_tokens: 7 }))).text);
      expect(short.usage.completion_tokens).toBe(7);
      expect(short.choices[0].message.content.match(/ \w+/g)).toHaveLength(7);
      expect(short.choices[0].finish_reason).toBe('length');
      const long = JSON.parse((await client.chat(chatBody('glm-5', { max_tokens: 4000 }))).text);
      expect(long.usage.completion_tokens).toBe(150);
      const alt = JSON.parse((await client.chat(chatBody('glm-5', { max_completion_tokens: 3 }))).text);
      expect(alt.usage.completion_tokens).toBe(3);
    });

    it('gives identical content for identical requests and different content for a different prompt', async () => {
      const a = JSON.parse((await client.chat(chatBody('glm-5'))).text).choices[0].message.content;
      const b = JSON.parse((await client.chat(chatBody('glm-5'))).text).choices[0].message.content;
      const other = await client.chat({ model: 'glm-5', messages: [{ role: 'user', content: 'Something else entirely' }] });
      expect(b).toBe(a);
      expect(JSON.parse(other.text).choices[0].message.content).not.toBe(a);
    });

    it('streams one token per chunk, then the finish chunk, then [DONE], without usage unless asked', async () => {
      const r = await client.stream(chatBody('glm-5', { stream: true }));
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(r.error).toBeUndefined();
      const chunks = chunksOf(r.events);
      for (const c of chunks) expect(c).toMatchObject({ object: 'chat.completion.chunk', model: 'glm-5' });
      const content = contentEvents(r.events).map((e) => JSON.parse(e.data).choices[0].delta.content as string);
      expect(content).toHaveLength(150);
      for (const t of content) expect(t).toMatch(/^ [a-z]+$/);
      expect(chunks[0].choices[0].delta.role).toBe('assistant');
      expect(chunks).toHaveLength(151);
      expect(chunks[150].choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
      expect(chunks.some((c) => c.usage !== undefined)).toBe(false);
      expect(r.events[r.events.length - 1]?.data).toBe('[DONE]');
      expect(r.events).toHaveLength(152);

      const json = JSON.parse((await client.chat(chatBody('glm-5'))).text);
      expect(content.join('')).toBe(json.choices[0].message.content);
    });

    it('sends a usage chunk after the finish chunk and before [DONE] when include_usage is true', async () => {
      const r = await client.stream(chatBody('deepseek-v4-flash', { stream: true, max_tokens: 5, stream_options: { include_usage: true } }));
      const chunks = chunksOf(r.events);
      expect(contentEvents(r.events)).toHaveLength(5);
      expect(chunks).toHaveLength(7);
      expect(chunks[5].choices[0].finish_reason).toBe('length');
      expect(chunks[6]).toMatchObject({ choices: [], usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: 5, total_tokens: PROMPT_TOKENS + 5 } });
      expect(r.events.map((e) => e.data).slice(-1)).toEqual(['[DONE]']);
      const noUsage = await client.stream(chatBody('deepseek-v4-flash', { stream: true, max_tokens: 5, stream_options: { include_usage: false } }));
      expect(chunksOf(noUsage.events).some((c) => c.usage !== undefined)).toBe(false);
    });

    it('answers at once and schedules no timer at all at scale 0', async () => {
      const before = timers.scheduled();
      const t0 = performance.now();
      const [json, stream] = await Promise.all([
        client.chat(chatBody('qwen3.5-397b')), // 1.2 s + 15 s at scale 1
        client.stream(chatBody('qwen3.5-397b', { stream: true, stream_options: { include_usage: true } })),
      ]);
      expect(performance.now() - t0).toBeLessThan(500);
      expect(json.status).toBe(200);
      expect(contentEvents(stream.events)).toHaveLength(150);
      expect(timers.scheduled()).toBe(before);
    });

    it('keeps connections alive between requests', async () => {
      const r = await client.chat(chatBody('glm-5', { max_tokens: 1 }));
      expect(r.headers.connection).not.toBe('close');
      expect(r.headers['keep-alive']).toMatch(/timeout=\d+/);
    });
  });

  describe('scripted faults', () => {
    it.each([
      ['http_500', 500, 'server_error'],
      ['http_503', 503, 'server_error'],
      ['http_429', 429, 'requests'],
    ])('%s answers %i with an OpenAI error body, once', async (fault, status, type) => {
      await client.addFault({ model: 'glm-5', fault });
      const r = await client.chat(chatBody('glm-5'));
      expect(r.status).toBe(status);
      expect(JSON.parse(r.text).error).toMatchObject({ type, message: expect.any(String), code: expect.any(String) });
      if (fault === 'http_429') expect(r.headers['retry-after']).toBe('1');
      else expect(r.headers['retry-after']).toBeUndefined();
      expect((await client.chat(chatBody('glm-5'))).status).toBe(200);
    });

    it('timeout sends nothing for delayMs, then closes the connection', async () => {
      await client.addFault({ model: 'glm-5', fault: 'timeout', delayMs: 200 });
      const t0 = performance.now();
      const pending = client.chat(chatBody('glm-5'));
      await new Promise((r) => setTimeout(r, 100));
      expect((await client.stats()).openStreams).toBe(1);
      await expect(pending).rejects.toThrow();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
      const s = await client.waitForStats((x) => x.openStreams === 0);
      expect(s).toMatchObject({ openStreams: 0, abortedByClient: 0 });
    });

    it('timeout applies to streamed requests too: no headers, then a closed connection', async () => {
      await client.addFault({ model: 'glm-5', fault: 'timeout', delayMs: 150 });
      const t0 = performance.now();
      await expect(client.stream(chatBody('glm-5', { stream: true }))).rejects.toThrow();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    });

    it('cut streams exactly afterTokens tokens, then the connection fails without finish, usage or [DONE]', async () => {
      await client.addFault({ model: 'glm-5', fault: 'cut', afterTokens: 5 });
      const r = await client.stream(chatBody('glm-5', { stream: true, stream_options: { include_usage: true } }));
      expect(r.status).toBe(200);
      expect(r.error).toBeDefined();
      expect(contentEvents(r.events)).toHaveLength(5);
      expect(r.events).toHaveLength(5);
      expect(r.events.some((e) => e.data === '[DONE]')).toBe(false);
      expect((await client.stream(chatBody('glm-5', { stream: true }))).error).toBeUndefined();
    });

    it('cut of a non-streamed request closes the connection without an answer', async () => {
      await client.addFault({ model: 'glm-5', fault: 'cut', afterTokens: 5 });
      await expect(client.chat(chatBody('glm-5'))).rejects.toThrow();
      expect((await client.chat(chatBody('glm-5'))).status).toBe(200);
    });

    it('stall streams afterTokens tokens, goes silent for delayMs, then closes the connection', async () => {
      await client.addFault({ model: 'glm-5', fault: 'stall', afterTokens: 3, delayMs: 250 });
      const r = await client.stream(chatBody('glm-5', { stream: true }));
      expect(contentEvents(r.events)).toHaveLength(3);
      expect(r.events).toHaveLength(3);
      expect(r.error).toBeDefined();
      const lastAt = r.events[2]?.atMs ?? Infinity;
      expect(r.endMs - lastAt).toBeGreaterThanOrEqual(240);
      expect(r.endMs - lastAt).toBeLessThan(2000);
    });

    it('no_usage answers normally without usage, in JSON and in streams', async () => {
      await client.addFault({ model: 'glm-5', fault: 'no_usage', times: 2 });
      const json = JSON.parse((await client.chat(chatBody('glm-5'))).text);
      expect(json.choices[0].message.content.match(/ \w+/g)).toHaveLength(150);
      expect(json).not.toHaveProperty('usage');
      const r = await client.stream(chatBody('glm-5', { stream: true, stream_options: { include_usage: true } }));
      expect(r.error).toBeUndefined();
      expect(contentEvents(r.events)).toHaveLength(150);
      const chunks = chunksOf(r.events);
      expect(chunks.some((c) => c.usage !== undefined)).toBe(false);
      expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('stop');
      expect(r.events[r.events.length - 1]?.data).toBe('[DONE]');
      // consumed: usage is back
      expect(JSON.parse((await client.chat(chatBody('glm-5'))).text).usage.completion_tokens).toBe(150);
    });

    it('garbage answers a non-streamed request with 200 and a body that is not JSON', async () => {
      await client.addFault({ model: 'glm-5', fault: 'garbage' });
      const r = await client.chat(chatBody('glm-5'));
      expect(r.status).toBe(200);
      expect(r.text.length).toBeGreaterThan(0);
      expect(() => JSON.parse(r.text)).toThrow();
    });

    it('garbage streams SSE data lines that are not JSON, then closes', async () => {
      await client.addFault({ model: 'glm-5', fault: 'garbage' });
      const r = await client.stream(chatBody('glm-5', { stream: true }));
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(r.events.length).toBeGreaterThan(0);
      for (const e of r.events) {
        expect(e.data).not.toBe('[DONE]');
        expect(() => JSON.parse(e.data)).toThrow();
      }
    });

    it('times: 2 faults the next two requests, then no more', async () => {
      await client.addFault({ model: 'glm-5', fault: 'http_500', times: 2 });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await client.chat(chatBody('glm-5'))).status);
      expect(statuses).toEqual([500, 500, 200]);
    });

    it('a fault for one model leaves the other models alone', async () => {
      await client.addFault({ model: 'glm-5', fault: 'http_503' });
      expect((await client.chat(chatBody('qwen3-8b'))).status).toBe(200);
      expect((await client.chat(chatBody('glm-5'))).status).toBe(503);
    });

    it('"*" matches any model; a fault for the model itself goes first; a request consumes at most one fault', async () => {
      await client.addFault({ model: '*', fault: 'http_500' });
      await client.addFault({ model: 'glm-5', fault: 'http_503' });
      expect((await client.chat(chatBody('glm-5'))).status).toBe(503);
      expect((await client.chat(chatBody('qwen3-8b'))).status).toBe(500);
      expect((await client.chat(chatBody('glm-5'))).status).toBe(200);

      await client.addFault({ model: '*', fault: 'http_429', times: 2 });
      expect((await client.chat(chatBody('kimi-k2.5'))).status).toBe(429);
      expect((await client.chat(chatBody('deepseek-r1'))).status).toBe(429);
      expect((await client.chat(chatBody('deepseek-r1'))).status).toBe(200);
    });

    it('DELETE /__sim/faults clears the queue', async () => {
      await client.addFault({ model: 'glm-5', fault: 'http_500', times: 3 });
      await client.addFault({ model: '*', fault: 'cut' });
      expect(JSON.parse((await client.json('GET', '/__sim/faults')).text).faults).toHaveLength(2);
      const del = await client.json('DELETE', '/__sim/faults');
      expect(del.status).toBe(200);
      expect(JSON.parse(del.text)).toEqual({ cleared: 2 });
      expect((await client.chat(chatBody('glm-5'))).status).toBe(200);
      expect((await client.stream(chatBody('qwen3-8b', { stream: true }))).error).toBeUndefined();
    });

    it('applies the defaults: times 1, afterTokens 20', async () => {
      const r = await client.json('POST', '/__sim/faults', { model: 'glm-5', fault: 'cut' });
      expect(r.status).toBe(201);
      expect(JSON.parse(r.text).queued).toEqual({ model: 'glm-5', fault: 'cut', times: 1, afterTokens: 20 });
      const s = await client.stream(chatBody('glm-5', { stream: true }));
      expect(contentEvents(s.events)).toHaveLength(20);
      expect(s.error).toBeDefined();
    });

    it.each([
      ['an unknown fault', { model: 'glm-5', fault: 'explode' }, /fault must be one of .*http_500/],
      ['an unknown model', { model: 'gpt-17', fault: 'http_500' }, /unknown model "gpt-17"/],
      ['no model', { fault: 'http_500' }, /model is required/],
      ['times 0', { model: 'glm-5', fault: 'http_500', times: 0 }, /times must be/],
      ['a negative afterTokens', { model: 'glm-5', fault: 'cut', afterTokens: -1 }, /afterTokens must be/],
      ['a negative delayMs', { model: 'glm-5', fault: 'stall', delayMs: -5 }, /delayMs must be/],
      ['invalid JSON', '{"model":', /JSON/],
    ])('refuses %s with 400 and a clear message, queueing nothing', async (_, spec, message) => {
      const r = await client.json('POST', '/__sim/faults', spec);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error.message).toMatch(message);
      expect(JSON.parse((await client.json('GET', '/__sim/faults')).text).faults).toEqual([]);
    });
  });

  describe('stats', () => {
    it('counts requests per model on arrival, faulted and invalid-body ones included, unknown models not', async () => {
      await client.chat(chatBody('glm-5'));
      await client.stream(chatBody('glm-5', { stream: true }));
      await client.chat(chatBody('qwen3-8b'));
      await client.addFault({ model: 'glm-5', fault: 'http_500' });
      await client.chat(chatBody('glm-5'));
      await client.chat({ model: 'glm-5' }); // 400: no messages, but it named a known model
      await client.chat(chatBody('nope'));
      expect(await client.stats()).toEqual({ requests: { 'glm-5': 4, 'qwen3-8b': 1 }, openStreams: 0, abortedByClient: 0 });
    });

    it('counts the open response of a stalled stream, and connections the simulator closes are not client aborts', async () => {
      await client.addFault({ model: 'glm-5', fault: 'stall', afterTokens: 2, delayMs: 300 });
      let statsDuring: Awaited<ReturnType<SimClient['stats']>> | undefined;
      const r = await client.stream(chatBody('glm-5', { stream: true }), {
        onEvent: (_, all) => {
          if (all.length === 2) {
            void client.stats().then((s) => (statsDuring = s));
          }
        },
      });
      expect(r.error).toBeDefined();
      expect(statsDuring?.openStreams).toBe(1);
      expect(await client.waitForStats((s) => s.openStreams === 0)).toMatchObject({ openStreams: 0, abortedByClient: 0 });
    });

    it('DELETE /__sim/stats resets the totals but not openStreams', async () => {
      await client.chat(chatBody('glm-5'));
      await client.addFault({ model: 'qwen3-8b', fault: 'timeout', delayMs: 400 });
      const pending = client.chat(chatBody('qwen3-8b')).catch((e: Error) => e);
      await client.waitForStats((s) => s.openStreams === 1);
      const del = await client.json('DELETE', '/__sim/stats');
      expect(del.status).toBe(200);
      expect(await client.stats()).toEqual({ requests: {}, openStreams: 1, abortedByClient: 0 });
      expect(await pending).toBeInstanceOf(Error);
      expect(await client.waitForStats((s) => s.openStreams === 0)).toEqual({ requests: {}, openStreams: 0, abortedByClient: 0 });
    });
  });
});

describe('simulator with latency', () => {
  const runs: { sim: Simulator; client: SimClient }[] = [];
  async function start(latencyScale: number, timers = countingTimers()) {
    const sim = await startSimulator({ port: 0, latencyScale, timers });
    const client = new SimClient(sim);
    runs.push({ sim, client });
    return { sim, client, timers };
  }
  afterEach(async () => {
    for (const r of runs.splice(0)) {
      await r.client.close();
      await r.sim.close();
    }
  });

  it('scales the first token and the token pace of a stream (glm-5: 500 ms, 25 tok/s, scale 0.2)', async () => {
    const { client } = await start(0.2);
    const r = await client.stream(chatBody('glm-5', { stream: true, max_tokens: 10 }));
    const tokens = contentEvents(r.events);
    expect(tokens).toHaveLength(10);
    const first = tokens[0]?.atMs ?? 0;
    const last = tokens[9]?.atMs ?? 0;
    expect(first).toBeGreaterThanOrEqual(0.9 * 100);
    expect(first).toBeLessThan(100 + 250);
    // token 9 is due at (500 + 9 * 40) * 0.2 = 172 ms
    expect(last).toBeGreaterThanOrEqual(0.9 * 172);
    expect(last - first).toBeGreaterThanOrEqual(0.9 * 72);
    expect(last).toBeLessThan(172 + 300);
  });

  it('makes a non-streamed answer wait for ttft plus every token (glm-5, 10 tokens, scale 0.2)', async () => {
    const { client } = await start(0.2);
    const r = await client.chat(chatBody('glm-5', { max_tokens: 10 }));
    expect(r.status).toBe(200);
    // (500 + 10 * 40) * 0.2 = 180 ms
    expect(r.ms).toBeGreaterThanOrEqual(0.9 * 180);
    expect(r.ms).toBeLessThan(180 + 300);
  });

  it('schedules tokens against the request start, so timer lateness does not add up (step-3.5-flash, scale 0.04)', async () => {
    const { client } = await start(0.04);
    // Token i is due at (120 + i * 12.5) * 0.04 ms: one every 0.5 ms, the last at 79.3 ms. Timers cannot fire that
    // often (>= 1 ms each), so a pace of "one timer per token after the previous one" would need >= 154 ms.
    const r = await client.stream(chatBody('step-3.5-flash', { stream: true }));
    const tokens = contentEvents(r.events);
    expect(tokens).toHaveLength(150);
    const last = tokens[149]?.atMs ?? 0;
    expect(last).toBeGreaterThanOrEqual(0.9 * 79.3);
    expect(last).toBeLessThan(140);
  });

  it('uses the Asia TTFT when x-region: ASIA is sent (kimi-k2.5: 480 ms vs 600 ms)', async () => {
    const { client } = await start(1);
    const body = chatBody('kimi-k2.5', { stream: true, max_tokens: 1 });
    const [asia, us] = await Promise.all([client.stream(body, { headers: { ...AUTH, 'x-region': 'ASIA' } }), client.stream(body)]);
    const asiaTtft = contentEvents(asia.events)[0]?.atMs ?? 0;
    const usTtft = contentEvents(us.events)[0]?.atMs ?? 0;
    expect(asiaTtft).toBeGreaterThanOrEqual(0.9 * 480);
    expect(asiaTtft).toBeLessThan(570);
    expect(usTtft).toBeGreaterThanOrEqual(0.9 * 600);
  });

  it('counts open streams while a slow stream is being written', async () => {
    const { client } = await start(0.2);
    // qwen3.5-397b: (1200 + 5 * 100) * 0.2 = 340 ms
    const pending = client.stream(chatBody('qwen3.5-397b', { stream: true, max_tokens: 5 }));
    const during = await client.waitForStats((s) => s.openStreams === 1, 300);
    expect(during.openStreams).toBe(1);
    expect(during.requests).toEqual({ 'qwen3.5-397b': 1 });
    const r = await pending;
    expect(r.error).toBeUndefined();
    expect(await client.waitForStats((s) => s.openStreams === 0)).toEqual({
      requests: { 'qwen3.5-397b': 1 },
      openStreams: 0,
      abortedByClient: 0,
    });
  });

  it('counts a client abort mid-stream, closes the response and leaves no timer behind', async () => {
    const { client, timers } = await start(0.2);
    // glm-5 at 0.2: 150 tokens take about 1.3 s; the client leaves after 3.
    const r = await client.stream(chatBody('glm-5', { stream: true }), { onEvent: (_, all) => (all.length === 3 ? 'abort' : undefined) });
    expect(r.error).toBeDefined();
    expect(r.events).toHaveLength(3);
    expect(timers.scheduled()).toBeGreaterThan(0);
    const s = await client.waitForStats((x) => x.abortedByClient === 1 && x.openStreams === 0);
    expect(s).toMatchObject({ openStreams: 0, abortedByClient: 1 });
    expect(timers.live()).toBe(0);

    // A client leaving a stalled stream: the 30 s stall timer must go at once, not when it would have fired.
    await client.addFault({ model: 'glm-5', fault: 'stall', afterTokens: 2, delayMs: 30_000 });
    const stalled = await client.stream(chatBody('glm-5', { stream: true }), { onEvent: (_, all) => (all.length === 2 ? 'abort' : undefined) });
    expect(stalled.events).toHaveLength(2);
    expect(await client.waitForStats((x) => x.abortedByClient === 2 && x.openStreams === 0)).toMatchObject({ openStreams: 0, abortedByClient: 2 });
    expect(timers.live()).toBe(0);

    // and the totals reset
    await client.json('DELETE', '/__sim/stats');
    expect(await client.stats()).toEqual({ requests: {}, openStreams: 0, abortedByClient: 0 });
  });

  it('close() ends open responses, clears their timers and does not wait for keep-alive sockets', async () => {
    const { sim, client, timers } = await start(0.1);
    await client.chat(chatBody('qwen3-8b', { max_tokens: 1 })); // leaves an idle keep-alive socket in the pool
    await client.addFault({ model: 'qwen3-8b', fault: 'stall', afterTokens: 1, delayMs: 30_000 });
    let sawToken!: () => void;
    const tokenSeen = new Promise<void>((r) => (sawToken = r));
    const stalled = client.stream(chatBody('qwen3-8b', { stream: true }), { onEvent: () => sawToken() }).catch((e: Error) => e);
    await tokenSeen; // now the response sits in its 30 s stall
    expect((await client.stats()).openStreams).toBe(1);
    expect(timers.live()).toBe(1);
    const t0 = performance.now();
    await sim.close();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(timers.live()).toBe(0);
    const r = await stalled;
    expect(r instanceof Error || r.error !== undefined).toBe(true);
  });
});
