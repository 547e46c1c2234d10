import type { ChatMessage, ToolChoice, ToolDefinition, UpstreamChatRequest } from './types';

/**
 * The JSON body of a streamed chat completion. Always `stream: true` with usage requested, always an explicit
 * `max_tokens`; `temperature`, `tools` and `tool_choice` only when the caller gave them.
 */
export function chatRequestBody(req: Pick<UpstreamChatRequest, 'model' | 'messages' | 'maxTokens' | 'temperature' | 'tools' | 'toolChoice'>): string {
  const tools = req.tools ?? [];
  return JSON.stringify({
    model: req.model,
    messages: req.messages.map(wireMessage),
    max_tokens: req.maxTokens,
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(tools.length === 0 ? {} : { tools: tools.map(wireTool) }),
    ...(req.toolChoice === undefined ? {} : { tool_choice: wireToolChoice(req.toolChoice) }),
    stream: true,
    stream_options: { include_usage: true },
  });
}

/** OpenAI's message shape: an assistant turn that only called tools has content null; tool results name their call. */
function wireMessage(m: ChatMessage): Record<string, unknown> {
  const calls = m.toolCalls ?? [];
  if (calls.length > 0) {
    return {
      role: m.role,
      content: m.content === '' ? null : m.content,
      tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
    };
  }
  if (m.toolCallId !== undefined) return { role: m.role, content: m.content, tool_call_id: m.toolCallId };
  return { role: m.role, content: m.content };
}

function wireTool(t: ToolDefinition): Record<string, unknown> {
  return {
    type: 'function',
    function: {
      name: t.name,
      ...(t.description === undefined ? {} : { description: t.description }),
      ...(t.parameters === undefined ? {} : { parameters: t.parameters }),
    },
  };
}

function wireToolChoice(c: ToolChoice): unknown {
  return typeof c === 'string' ? c : { type: 'function', function: { name: c.name } };
}

/** Request headers: the gateway's key as a bearer token and the region as `x-region` (US_EAST or ASIA). */
export function chatRequestHeaders(apiKey: string, region: UpstreamChatRequest['region']): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'text/event-stream',
    authorization: `Bearer ${apiKey}`,
    'x-region': region,
  };
}

/** Splits a base URL such as `http://127.0.0.1:4010/v1` into the pool's origin and the chat completions path. */
export function chatEndpoint(baseUrl: string): { readonly origin: string; readonly path: string } {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`upstream base URL must be http or https, got ${url.protocol}`);
  }
  const base = url.pathname.replace(/\/+$/, '');
  return { origin: url.origin, path: `${base}/chat/completions` };
}
