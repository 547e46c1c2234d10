import { checkShape, type ChatInput } from '../../src/chat/chat-input';
import { checkTools, upstreamToolChoice, upstreamTools } from '../../src/chat/tool-input';
import { AppError } from '../../src/errors';

const PARAMS = '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}';
const base: ChatInput = {
  profile: 'chat_default',
  messages: [{ role: 'USER', content: 'weather in Oslo?' }],
  tools: [{ name: 'get_weather', description: 'Weather for a city', parameters: PARAMS }],
};
const conversation: ChatInput['messages'] = [
  { role: 'USER', content: 'weather in Oslo?' },
  { role: 'ASSISTANT', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Oslo"}' }] },
  { role: 'TOOL', content: 'sunny', toolCallId: 'call_1' },
];

/** The BAD_USER_INPUT a check throws: its field, or null when it passes. */
function refusal(input: ChatInput): string | null {
  try {
    checkTools(input);
    return null;
  } catch (e) {
    if (!(e instanceof AppError) || e.code !== 'BAD_USER_INPUT') throw e;
    return String(e.extensions.field);
  }
}

describe('tool validation', () => {
  it('accepts tools, a tool choice and a whole tool-using conversation', () => {
    expect(refusal(base)).toBeNull();
    expect(refusal({ ...base, toolChoice: { tool: 'get_weather' } })).toBeNull();
    expect(refusal({ ...base, toolChoice: { mode: 'REQUIRED' } })).toBeNull();
    expect(refusal({ ...base, messages: conversation })).toBeNull();
    expect(refusal({ ...base, tools: [{ name: 'no_args' }] })).toBeNull();
  });

  it.each<[string, Partial<ChatInput>, string]>([
    ['a name with a space', { tools: [{ name: 'get weather' }] }, 'tools[0].name'],
    ['a name of 65 characters', { tools: [{ name: 'x'.repeat(65) }] }, 'tools[0].name'],
    ['a name given twice', { tools: [{ name: 'f' }, { name: 'f' }] }, 'tools[1].name'],
    ['129 tools', { tools: Array.from({ length: 129 }, (_, i) => ({ name: `f${i}` })) }, 'tools'],
    ['parameters that are not JSON', { tools: [{ name: 'f', parameters: '{type: object}' }] }, 'tools[0].parameters'],
    ['parameters that are an array', { tools: [{ name: 'f', parameters: '[]' }] }, 'tools[0].parameters'],
    ['parameters whose type is not object', { tools: [{ name: 'f', parameters: '{"type":"string"}' }] }, 'tools[0].parameters'],
    [
      'parameters that are not a valid JSON Schema',
      { tools: [{ name: 'f', parameters: '{"type":"object","properties":{"a":{"type":"strnig"}}}' }] },
      'tools[0].parameters',
    ],
    ['required that is not an array', { tools: [{ name: 'f', parameters: '{"type":"object","required":"a"}' }] }, 'tools[0].parameters'],
    ['a toolChoice without tools', { tools: null, toolChoice: { mode: 'AUTO' } }, 'toolChoice'],
    ['a toolChoice with both mode and tool', { toolChoice: { mode: 'AUTO', tool: 'get_weather' } }, 'toolChoice'],
    ['a toolChoice with neither', { toolChoice: {} }, 'toolChoice'],
    ['a toolChoice naming a tool that is not there', { toolChoice: { tool: 'get_time' } }, 'toolChoice.tool'],
    [
      'toolCalls on a USER message',
      { messages: [{ role: 'USER', content: 'x', toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] }] },
      'messages[0].toolCalls',
    ],
    [
      'a tool call with an empty id',
      { messages: [{ role: 'ASSISTANT', content: '', toolCalls: [{ id: '', name: 'f', arguments: '{}' }] }] },
      'messages[0].toolCalls[0].id',
    ],
    [
      'a tool call with a bad name',
      { messages: [{ role: 'ASSISTANT', content: '', toolCalls: [{ id: 'c', name: 'f()', arguments: '{}' }] }] },
      'messages[0].toolCalls[0].name',
    ],
    [
      'tool call arguments that are not JSON',
      { messages: [{ role: 'ASSISTANT', content: '', toolCalls: [{ id: 'c', name: 'f', arguments: '{"a":' }] }] },
      'messages[0].toolCalls[0].arguments',
    ],
    [
      'a tool call id used twice',
      {
        messages: [
          { role: 'ASSISTANT', content: '', toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] },
          { role: 'ASSISTANT', content: '', toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] },
        ],
      },
      'messages[1].toolCalls[0].id',
    ],
    ['a TOOL message without toolCallId', { messages: [...conversation.slice(0, 2), { role: 'TOOL', content: 'sunny' }] }, 'messages[2].toolCallId'],
    [
      'a TOOL message answering an unknown call',
      { messages: [...conversation.slice(0, 2), { role: 'TOOL', content: 'sunny', toolCallId: 'call_9' }] },
      'messages[2].toolCallId',
    ],
    [
      'a TOOL message before the call it answers',
      { messages: [{ role: 'TOOL', content: 'sunny', toolCallId: 'call_1' }, ...conversation.slice(0, 2)] },
      'messages[0].toolCallId',
    ],
    ['a toolCallId on a USER message', { messages: [{ role: 'USER', content: 'x', toolCallId: 'call_1' }] }, 'messages[0].toolCallId'],
  ])('refuses %s, naming %s', (_label, change, field) => {
    expect(refusal({ ...base, ...change })).toBe(field);
  });

  it('counts tools and tool calls toward the request byte limit', () => {
    const input: ChatInput = { ...base, messages: conversation };
    const messageBytes = 'weather in Oslo?'.length + 'sunny'.length;
    const toolBytes = 'get_weather'.length + 'Weather for a city'.length + PARAMS.length + 'call_1get_weather{"city":"Oslo"}'.length + 'call_1'.length;
    expect(checkShape(input, { mode: 'collect', maxMessageBytes: 100_000 }).messageBytes).toBe(messageBytes + toolBytes);
    expect(() => checkShape(input, { mode: 'collect', maxMessageBytes: messageBytes + toolBytes - 1 })).toThrow(/total \d+ bytes; the limit is/);
  });

  it('hands the upstream parsed parameters and OpenAI tool_choice values', () => {
    expect(upstreamTools(base)).toEqual([{ name: 'get_weather', description: 'Weather for a city', parameters: JSON.parse(PARAMS) }]);
    expect(upstreamTools({ tools: [] })).toBeUndefined();
    expect(upstreamToolChoice({ toolChoice: { mode: 'NONE' } })).toBe('none');
    expect(upstreamToolChoice({ toolChoice: { tool: 'get_weather' } })).toEqual({ name: 'get_weather' });
  });
});
