import { chatEndpoint, chatRequestBody, chatRequestHeaders } from '../../src/upstream/chat-request';
import { UpstreamError, classifyStatus, parseRetryAfter } from '../../src/upstream/errors';

describe('classifyStatus', () => {
  it('5xx, 408, 429 and 404 are retryable', () => {
    for (const s of [500, 502, 503, 504, 408, 429, 404]) {
      expect(classifyStatus(s)).toEqual({ kind: 'retryable', code: `HTTP_${s}` });
    }
  });

  it('keeps Retry-After on retryable statuses', () => {
    expect(classifyStatus(429, 1000)).toEqual({ kind: 'retryable', code: 'HTTP_429', retryAfterMs: 1000 });
    expect(classifyStatus(503, 2000)).toEqual({ kind: 'retryable', code: 'HTTP_503', retryAfterMs: 2000 });
  });

  it('401 and 403 mean the gateway key is wrong', () => {
    expect(classifyStatus(401)).toEqual({ kind: 'auth', code: 'HTTP_401' });
    expect(classifyStatus(403)).toEqual({ kind: 'auth', code: 'HTTP_403' });
  });

  it('other 4xx are fatal: another model would refuse them too', () => {
    expect(classifyStatus(400)).toEqual({ kind: 'fatal', code: 'HTTP_400', status: 400 });
    expect(classifyStatus(413, 5000)).toEqual({ kind: 'fatal', code: 'HTTP_413', status: 413 });
    expect(classifyStatus(422)).toEqual({ kind: 'fatal', code: 'HTTP_422', status: 422 });
  });
});

describe('UpstreamError', () => {
  it('carries its failure, a code, and a message made from the code only', () => {
    const e = new UpstreamError({ kind: 'retryable', code: 'HTTP_500' });
    expect(e.code).toBe('HTTP_500');
    expect(e.message).toBe('upstream failed (HTTP_500)');
    expect(e.failure).toEqual({ kind: 'retryable', code: 'HTTP_500' });
    expect(new UpstreamError({ kind: 'aborted' }).code).toBe('ABORTED');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-05-20T12:00:00Z');
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 2.5 ', now)).toBe(2500);
    expect(parseRetryAfter(['3', '9'], now)).toBe(3000);
  });
  it('reads an HTTP date, never negative', () => {
    expect(parseRetryAfter('Wed, 20 May 2026 12:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 20 May 2026 11:00:00 GMT', now)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
  });
});

describe('the chat request', () => {
  const messages = [
    { role: 'system' as const, content: 'be brief' },
    { role: 'user' as const, content: 'hi' },
  ];

  it('always streams with usage and an explicit max_tokens; temperature only when given', () => {
    expect(JSON.parse(chatRequestBody({ model: 'glm-5', messages, maxTokens: 64 }))).toEqual({
      model: 'glm-5',
      messages,
      max_tokens: 64,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(JSON.parse(chatRequestBody({ model: 'glm-5', messages, maxTokens: 64, temperature: 0 })).temperature).toBe(0);
  });

  it('sends the key as a bearer token and the region as x-region', () => {
    expect(chatRequestHeaders('k-1', 'ASIA')).toMatchObject({ authorization: 'Bearer k-1', 'x-region': 'ASIA' });
    expect(chatRequestHeaders('k-1', 'US_EAST')['x-region']).toBe('US_EAST');
  });

  it('posts to {baseUrl}/chat/completions', () => {
    expect(chatEndpoint('http://127.0.0.1:4010/v1')).toEqual({ origin: 'http://127.0.0.1:4010', path: '/v1/chat/completions' });
    expect(chatEndpoint('https://api.example.com/v1/')).toEqual({ origin: 'https://api.example.com', path: '/v1/chat/completions' });
    expect(chatEndpoint('http://h:1')).toEqual({ origin: 'http://h:1', path: '/chat/completions' });
    expect(() => chatEndpoint('ftp://h/v1')).toThrow(/http or https/);
  });
});
