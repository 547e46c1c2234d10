import { chatRequestBody } from '../../src/upstream/chat-request';
import { createSseEventDecoder } from '../../src/upstream/sse-events';
import { ToolCallAssembler } from '../../src/chat/tool-call-assembler';
import { estimatePromptTokens } from '../../src/routing/attempts';

const head = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"glm-5",';
const chunk = (delta: object, finish: string | null = null) =>
  `data: ${head}"choices":[{"index":0,"delta":${JSON.stringify(delta)},"finish_reason":${JSON.stringify(finish)}}]}\n\n`;

describe('SSE decoding of tool calls', () => {
  it("yields each chunk's tool-call pieces, the TOOL_CALLS finish and cached usage details", () => {
    const d = createSseEventDecoder();
    const events = d.push(
      chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '' } }] }) +
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] }) +
        chunk({ tool_calls: [{ index: 1, id: 'call_b', function: { name: 'g', arguments: '{}' } }] }) +
        chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }) +
        chunk({}, 'tool_calls') +
        `data: ${head}"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":30,"cache_write_tokens":10}}}\n\n` +
        'data: [DONE]\n\n',
    );
    expect(events).toEqual([
      { type: 'tool_calls', deltas: [{ index: 0, id: 'call_a', name: 'f' }] },
      { type: 'tool_calls', deltas: [{ index: 0, argumentsDelta: '{"x":' }] },
      { type: 'tool_calls', deltas: [{ index: 1, id: 'call_b', name: 'g', argumentsDelta: '{}' }] },
      { type: 'tool_calls', deltas: [{ index: 0, argumentsDelta: '1}' }] },
      { type: 'finish', reason: 'TOOL_CALLS' },
      { type: 'usage', promptTokens: 50, completionTokens: 4, cachedPromptTokens: 30, cacheWriteTokens: 10 },
    ]);
    expect(d.sawContent).toBe(true);
    expect(d.done).toBe(true);
  });

  it('a stream cut after tool-call pieces is INTERRUPTED (output was delivered), not GARBAGE', () => {
    const d = createSseEventDecoder();
    d.push(chunk({ tool_calls: [{ index: 0, id: 'call_a', function: { name: 'f', arguments: '{"x' } }] }));
    d.end();
    expect(d.failure?.code).toBe('INTERRUPTED');
  });

  it('maps every finish_reason of the contract', () => {
    for (const [wire, reason] of [
      ['stop', 'STOP'],
      ['length', 'LENGTH'],
      ['tool_calls', 'TOOL_CALLS'],
      ['content_filter', 'CONTENT_FILTER'],
    ]) {
      const events = createSseEventDecoder().push(chunk({}, wire!));
      expect(events).toEqual([{ type: 'finish', reason }]);
    }
  });
});

describe('ToolCallAssembler', () => {
  it('assembles interleaved parallel calls by index, in index order', () => {
    const a = new ToolCallAssembler();
    a.add([{ index: 1, id: 'b', name: 'g' }]);
    a.add([{ index: 0, id: 'a', name: 'f', argumentsDelta: '{"x"' }]);
    a.add([
      { index: 1, argumentsDelta: '{}' },
      { index: 0, argumentsDelta: ':1}' },
    ]);
    expect(a.calls()).toEqual([
      { id: 'a', name: 'f', arguments: '{"x":1}' },
      { id: 'b', name: 'g', arguments: '{}' },
    ]);
    a.reset();
    expect(a.calls()).toEqual([]);
  });
});

describe('the upstream request body', () => {
  it("sends tools, a named tool_choice, assistant tool_calls (content null) and tool results in OpenAI's format", () => {
    const body = JSON.parse(
      chatRequestBody({
        model: 'glm-5',
        maxTokens: 100,
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Oslo"}' }] },
          { role: 'tool', content: 'sunny', toolCallId: 'call_1' },
        ],
        tools: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } }],
        toolChoice: { name: 'get_weather' },
      }),
    );
    expect(body.messages).toEqual([
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', content: 'sunny', tool_call_id: 'call_1' },
    ]);
    expect(body.tools).toEqual([
      { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } } },
    ]);
    expect(body.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
  });

  it('leaves tools and tool_choice out when there are none; modes go as strings', () => {
    const plain = JSON.parse(chatRequestBody({ model: 'm', maxTokens: 1, messages: [{ role: 'user', content: 'x' }] }));
    expect(plain).not.toHaveProperty('tools');
    expect(plain).not.toHaveProperty('tool_choice');
    const required = JSON.parse(
      chatRequestBody({ model: 'm', maxTokens: 1, messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'f' }], toolChoice: 'required' }),
    );
    expect(required.tool_choice).toBe('required');
  });
});

describe('the prompt estimate counts tools and tool calls like the simulator', () => {
  it("ceil(chars / 4) + 4 per message (tool calls' names and arguments included) and per tool", () => {
    const params = { type: 'object', properties: { city: { type: 'string' } } };
    const n = estimatePromptTokens(
      [
        { role: 'user', content: 'weather?' }, // 8 -> 2 + 4
        { role: 'assistant', content: '', toolCalls: [{ id: 'c', name: 'get_weather', arguments: '{"city":"Oslo"}' }] }, // 11 + 15 = 26 -> 7 + 4
      ],
      [{ name: 'get_weather', parameters: params }],
    );
    const tool = Math.ceil(('get_weather' + JSON.stringify(params)).length / 4) + 4;
    expect(n).toBe(6 + 11 + tool);
  });
});
