/**
 * Headers a browser app must be able to read from a /v1 answer beyond the request id and Retry-After: OpenAI's
 * retry hint and rate-limit headers. CORS itself is the API's one policy (server/cors.ts, CORS_ORIGINS).
 */
export const OPENAI_EXPOSED_HEADERS = [
  'x-should-retry',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
];
