/**
 * Fixtures of the tool-calling tests, with the simulator's documented counting rules written out by hand:
 * prompt = ceil(chars / 4) + 4 per message and per tool (name + description + JSON parameters); a tool-call
 * answer's completion tokens = one per call plus one per 8 characters of its arguments.
 */
export const WEATHER_PARAMS = '{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}';
export const TIME_PARAMS = '{"type":"object","properties":{"zone":{"type":"string"}}}';
export const TOOLS = [
  { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS },
  { name: 'get_time', parameters: TIME_PARAMS },
];
export const QUESTION = 'What is the weather in Oslo?'; // 28 chars -> 7 + 4
/** The prompt tokens of QUESTION with TOOLS. */
export const PROMPT =
  11 + (Math.ceil(('get_weather' + 'Weather for a city' + WEATHER_PARAMS).length / 4) + 4) + (Math.ceil(('get_time' + TIME_PARAMS).length / 4) + 4);
/** The bytes QUESTION with TOOLS counts toward MAX_REQUEST_BYTES (and the hold's prompt upper bound). */
export const REQUEST_BYTES =
  QUESTION.length + 'get_weather'.length + 'Weather for a city'.length + WEATHER_PARAMS.length + 'get_time'.length + TIME_PARAMS.length;

export const toolInput = (extra: Record<string, unknown> = {}) => ({
  input: { profile: 'chat_default', messages: [{ role: 'USER', content: QUESTION }], tools: TOOLS, ...extra },
});

export const USAGE = 'usage { promptTokens completionTokens cachedPromptTokens cacheWriteTokens costUsd source }';
export const TOOL_CHAT = `mutation($input: ChatInput!) { chat(input: $input) { requestId model content outcome finishReason toolCalls { id name arguments } ${USAGE} attempts { model ok error } } }`;
export const TOOL_STREAM = `subscription($input: ChatInput!) { chatStream(input: $input) { requestId model delta done outcome finishReason toolCallDeltas { index id name argumentsDelta } ${USAGE} } }`;
export const SET_PRICE = `mutation($m: ID!, $o: Usd!, $i: Usd) { setModelPrice(model: $m, outputUsdPerMillion: $o, inputUsdPerMillion: $i) { id } }`;

/** Micro-dollars as the Usd scalar writes them. */
export const usd = (micros: bigint): string => `${micros / 1_000_000n}.${(micros % 1_000_000n).toString().padStart(6, '0')}`;
export const ceilDiv = (n: bigint, d: bigint): bigint => (n + d - 1n) / d;
/** Completion tokens the simulator reports for these calls. */
export const toolTokens = (calls: readonly { arguments: string }[]) => calls.reduce((n, c) => n + 1 + Math.ceil(c.arguments.length / 8), 0);
