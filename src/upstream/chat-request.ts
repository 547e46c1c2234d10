import type { UpstreamChatRequest } from './types';

/**
 * The JSON body of a streamed chat completion. Always `stream: true` with usage requested, always an explicit
 * `max_tokens`; `temperature` only when the caller gave one.
 */
export function chatRequestBody(req: Pick<UpstreamChatRequest, 'model' | 'messages' | 'maxTokens' | 'temperature'>): string {
  return JSON.stringify({
    model: req.model,
    messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
    max_tokens: req.maxTokens,
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    stream: true,
    stream_options: { include_usage: true },
  });
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
