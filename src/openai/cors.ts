import type { RequestHandler } from 'express';

/** Headers a browser app must be able to read from an answer: request id, retry and rate-limit information. */
export const EXPOSED_HEADERS = [
  'x-request-id',
  'retry-after',
  'x-should-retry',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
].join(', ');

/**
 * CORS for /v1. Any origin: the key travels in the Authorization header, never in a cookie, so a page can only
 * spend what its own key allows. Preflights reflect the requested headers, because OpenAI's browser SDK sends its
 * own (x-stainless-*) beside Authorization, which a `*` would not cover.
 */
export const openaiCors: RequestHandler = (req, res, next) => {
  res.set({ 'access-control-allow-origin': '*', 'access-control-expose-headers': EXPOSED_HEADERS });
  if (req.method !== 'OPTIONS') return next();
  const asked = req.headers['access-control-request-headers'];
  res.set({
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': typeof asked === 'string' && asked ? asked : 'authorization, content-type, idempotency-key, x-region',
    'access-control-max-age': '600',
    vary: 'access-control-request-headers',
  });
  res.status(204).end();
};
