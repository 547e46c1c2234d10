import { startSimulator, type Simulator } from '../../src/simulator/server';
import { chunksOf, SimClient } from '../support/simulator';

/**
 * The simulator's tool_calls and cached faults (shared/api/simulator.md, last section) over real HTTP. Expected
 * figures are computed by hand from the simulator's documented counting rule (ceil(chars / 4) + 4 per message and
 * per tool).
 */

const WEATHER_PARAMS = '{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}';
const TIME_PARAMS = '{"type":"object","properties":{"zone":{"type":"string"}}}';
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: JSON.parse(WEATHER_PARAMS) } },
  { type: 'function', function: { name: 'get_time', parameters: JSON.parse(TIME_PARAMS) } },
];
const messages = [
  { role: 'system', content: 'You are terse.' }, // 14 chars -> 4 + 4
  { role: 'user', content: 'Hello there, simulator!' }, // 23 chars -> 6 + 4
];
/** 18 for the messages; each tool: ceil((name + description + parameters JSON) / 4) + 4. */
const PROMPT_TOKENS =
  18 + (Math.ceil(('get_weather' + 'Weather for a city' + WEATHER_PARAMS).length / 4) + 4) + (Math.ceil(('get_time' + TIME_PARAMS).length / 4) + 4);

const body = (extra: Record<string, unknown> = {}) => ({
  model: 'glm-5',
  messages,
  tools: TOOLS,
  stream: true,
  stream_options: { include_usage: true },
  ...extra,
});

type Piece = { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } };

/** The tool_calls pieces of every chunk, one array per chunk that carried any. */
function pieceChunks(chunks: any[]): Piece[][] {
  return chunks.map((c) => c.choices?.[0]?.delta?.tool_calls as Piece[] | undefined).filter((p): p is Piece[] => Array.isArray(p));
}

/** Whole calls assembled by index, as an OpenAI client does. */
function assemble(pieces: Piece[][]): { id: string; name: string; arguments: string }[] {
  const calls: { id: string; name: string; arguments: string }[] = [];
  for (const p of pieces.flat()) {
    const c = (calls[p.index] ??= { id: '', name: '', arguments: '' });
    if (p.id) c.id = p.id;
    if (p.function?.name) c.name = p.function.name;
    c.arguments += p.function?.arguments ?? '';
  }
  return calls;
}

describe('simulator: tool calls and cached prompts', () => {
  let sim: Simulator;
  let client: SimClient;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, latencyScale: 0 });
    client = new SimClient(sim);
  });
  afterAll(async () => {
    await client.close();
    await sim.close();
  });
  beforeEach(() => client.reset());

  it('a request with tools and no fault answers with text, its prompt count including the tools', async () => {
    const r = await client.stream(body());
    const chunks = chunksOf(r.events);
    expect(pieceChunks(chunks)).toEqual([]);
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop');
    expect(chunks.at(-1).usage).toEqual({ prompt_tokens: PROMPT_TOKENS, completion_tokens: 150, total_tokens: PROMPT_TOKENS + 150 });
  });

  it('whole: one chunk carries the call id, name and complete JSON arguments; finish_reason tool_calls', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'whole' });
    const r = await client.stream(body());
    expect(r.error).toBeUndefined();
    const chunks = chunksOf(r.events);
    const pieces = pieceChunks(chunks);
    expect(pieces).toHaveLength(1);
    expect(pieces[0]).toHaveLength(1);
    const [call] = pieces[0]!;
    expect(call).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather' } });
    expect(call!.id).toMatch(/^call_/);
    const args = JSON.parse(call!.function!.arguments!);
    expect(Object.keys(args)).toEqual(['city', 'days']);
    expect(typeof args.city).toBe('string');
    expect(args.days).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.at(-2).choices[0].finish_reason).toBe('tool_calls');
    expect(r.events.at(-1)!.data).toBe('[DONE]');
    // Usage counts the split form's chunks: one per call plus one per 8 characters of arguments.
    const argsText = call!.function!.arguments!;
    expect(chunks.at(-1).usage.completion_tokens).toBe(1 + Math.ceil(argsText.length / 8));
    expect(chunks.at(-1).usage.prompt_tokens).toBe(PROMPT_TOKENS);
  });

  it('split: id and name in the first chunk only, the arguments over several chunks', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'split' });
    const r = await client.stream(body());
    const pieces = pieceChunks(chunksOf(r.events));
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces[0]![0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
    for (const p of pieces.slice(1)) {
      expect(p[0]!.id).toBeUndefined();
      expect(p[0]!.function?.name).toBeUndefined();
      expect(p[0]!.index).toBe(0);
    }
    const [call] = assemble(pieces);
    expect(JSON.parse(call!.arguments)).toHaveProperty('city');
    expect(chunksOf(r.events).at(-1).usage.completion_tokens).toBe(pieces.length);
  });

  it('parallel: the first two tools, indices 0 and 1, distinct ids; with one tool, that tool twice', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'parallel', times: 2 });
    const two = assemble(pieceChunks(chunksOf((await client.stream(body())).events)));
    expect(two.map((c) => c.name)).toEqual(['get_weather', 'get_time']);
    expect(new Set(two.map((c) => c.id)).size).toBe(2);
    expect(JSON.parse(two[1]!.arguments)).toEqual({ zone: expect.any(String) });
    const one = assemble(pieceChunks(chunksOf((await client.stream(body({ tools: [TOOLS[0]] }))).events)));
    expect(one.map((c) => c.name)).toEqual(['get_weather', 'get_weather']);
    expect(one[0]!.id).not.toBe(one[1]!.id);
  });

  it('cut: the connection dies in the middle of the arguments, with no finish_reason, usage or [DONE]', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'cut' });
    const r = await client.stream(body());
    expect(r.error).toBeDefined();
    const chunks = chunksOf(r.events);
    expect(chunks.every((c) => !c.usage && !c.choices?.[0]?.finish_reason)).toBe(true);
    expect(r.events.some((e) => e.data === '[DONE]')).toBe(false);
    const [call] = assemble(pieceChunks(chunks));
    expect(call!.name).toBe('get_weather');
    expect(call!.arguments.length).toBeGreaterThan(0);
    expect(() => JSON.parse(call!.arguments)).toThrow();
  });

  it('non-streamed: message.tool_calls with finish_reason tool_calls; cut closes the connection', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'parallel' });
    const r = await client.chat(body({ stream: false }));
    const json = JSON.parse(r.text);
    expect(json.choices[0].finish_reason).toBe('tool_calls');
    expect(json.choices[0].message.content).toBeNull();
    expect(json.choices[0].message.tool_calls.map((c: any) => [c.type, c.function.name])).toEqual([
      ['function', 'get_weather'],
      ['function', 'get_time'],
    ]);
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'cut' });
    await expect(client.chat(body({ stream: false }))).rejects.toThrow();
  });

  it('max_tokens stops the calls short like a real model: split chunks up to it, finish_reason length', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'whole', times: 2 });
    const r = await client.stream(body({ max_tokens: 3 }));
    const chunks = chunksOf(r.events);
    const pieces = pieceChunks(chunks);
    expect(pieces).toHaveLength(3);
    expect(pieces[0]![0]).toMatchObject({ function: { name: 'get_weather', arguments: '' } });
    expect(chunks.at(-2).choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1).usage.completion_tokens).toBe(3);
    const json = JSON.parse((await client.chat(body({ max_tokens: 3, stream: false }))).text);
    expect(json.choices[0].finish_reason).toBe('length');
    expect(json.choices[0].message.tool_calls).toHaveLength(1);
    expect(json.choices[0].message.tool_calls[0].function.arguments).toBe(assemble(pieces)[0]!.arguments);
    expect(json.usage.completion_tokens).toBe(3);
  });

  it('a tool_calls fault meeting a request without tools answers with text', async () => {
    await client.addFault({ model: 'glm-5', fault: 'tool_calls', shape: 'whole' });
    const r = await client.stream(body({ tools: undefined }));
    expect(pieceChunks(chunksOf(r.events))).toEqual([]);
    expect(chunksOf(r.events).at(-2).choices[0].finish_reason).toBe('stop');
  });

  it('cached: usage reports prompt_tokens_details as asked, capped at the prompt tokens', async () => {
    await client.addFault({ model: 'glm-5', fault: 'cached', cachedTokens: 20, cacheWriteTokens: 7 });
    const usage = chunksOf((await client.stream(body({ tools: undefined }))).events).at(-1).usage;
    expect(usage).toEqual({
      prompt_tokens: 18,
      completion_tokens: 150,
      total_tokens: 168,
      prompt_tokens_details: { cached_tokens: 18, cache_write_tokens: 0 },
    });

    await client.addFault({ model: 'glm-5', fault: 'cached', cachedTokens: 10, cacheWriteTokens: 5 });
    const json = JSON.parse((await client.chat(body({ tools: undefined, stream: false }))).text);
    expect(json.usage.prompt_tokens_details).toEqual({ cached_tokens: 10, cache_write_tokens: 5 });
    expect(json.usage.prompt_tokens).toBe(18);

    await client.addFault({ model: 'glm-5', fault: 'cached', cachedTokens: 10, cacheWriteTokens: 50 });
    const capped = chunksOf((await client.stream(body({ tools: undefined }))).events).at(-1).usage;
    expect(capped.prompt_tokens_details).toEqual({ cached_tokens: 10, cache_write_tokens: 8 });
  });

  it("counts an assistant turn's tool calls in the prompt", async () => {
    const args = '{"city":"Paris"}';
    const history = [
      ...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ];
    const r = await client.stream(body({ tools: undefined, messages: history }));
    const expected = 18 + (Math.ceil(('get_weather' + args).length / 4) + 4) + (Math.ceil('sunny'.length / 4) + 4);
    expect(chunksOf(r.events).at(-1).usage.prompt_tokens).toBe(expected);
  });

  it('refuses a bad shape or token count with 400 naming it', async () => {
    const shape = await client.json('POST', '/__sim/faults', { model: 'glm-5', fault: 'tool_calls', shape: 'sideways' });
    expect(shape.status).toBe(400);
    expect(shape.text).toContain('shape must be one of whole, split, parallel, cut');
    const neg = await client.json('POST', '/__sim/faults', { model: 'glm-5', fault: 'cached', cachedTokens: -1 });
    expect(neg.status).toBe(400);
    expect(neg.text).toContain('cachedTokens must be a whole number >= 0');
    const badTools = await client.chat(body({ tools: [{ type: 'function', function: {} }] }));
    expect(badTools.status).toBe(400);
  });
});
