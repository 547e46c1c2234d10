// Talking to the gateway: queries and mutations over HTTP, chatStream over graphql-ws (or GraphQL over SSE when a
// WebSocket cannot connect: proxies and some networks drop them), and errors in words.

const HTTP_URL = new URL('/graphql', location.href).href;
const WS_URL = HTTP_URL.replace(/^http/, 'ws');

/** An API error with the gateway's code and extensions (remainingUsd, retryAfterMs, attempts...). */
export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

const toApiError = (e) => new ApiError(e.message ?? 'unknown error', e.extensions?.code ?? 'ERROR', e.extensions ?? {});

/** One query or mutation with `Authorization: Bearer <key>`; resolves to data, rejects with an ApiError. */
export async function gql(key, query, variables = {}) {
  let res;
  try {
    res = await fetch(HTTP_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('The gateway cannot be reached. Is it running?', 'NETWORK');
  }
  const body = await res.json().catch(() => null);
  if (!body) throw new ApiError(`The gateway answered HTTP ${res.status} without a GraphQL body.`, 'HTTP_' + res.status);
  if (body.errors?.length) throw toApiError(body.errors[0]);
  return body.data;
}

let wsClient = null;
let wsKey = null;
let sseClient = null;
let sseKey = null;
/** 'graphql-ws' until a WebSocket fails to connect; then 'sse' for the rest of this page's life. */
let transport = 'graphql-ws';
const transportListeners = [];

/** Calls `fn(transport)` now and whenever the page switches transport. */
export function onTransport(fn) {
  transportListeners.push(fn);
  fn(transport);
}
const useTransport = (t) => {
  transport = t;
  for (const fn of transportListeners) fn(t);
};

/** The graphql-ws client for a key: one connection per key, opened when a stream starts, closed when none runs. */
function wsClientFor(key) {
  if (wsClient && wsKey === key) return wsClient;
  wsClient?.dispose();
  wsKey = key;
  wsClient = window.graphqlWs.createClient({
    url: WS_URL,
    connectionParams: { authorization: `Bearer ${key}` },
    lazy: true,
    retryAttempts: 0,
    on: { connected: () => (wsClient.everConnected = true) },
  });
  return wsClient;
}

/** The graphql-sse client for a key (distinct connections: one HTTP request per stream, Accept: text/event-stream). */
function sseClientFor(key) {
  if (sseClient && sseKey === key) return sseClient;
  sseClient?.dispose();
  sseKey = key;
  sseClient = window.graphqlSse.createClient({ url: HTTP_URL, headers: { authorization: `Bearer ${key}` }, retryAttempts: 0 });
  return sseClient;
}

/**
 * Starts a subscription; calls onEvent(data) for each result and onEnd(error | null) once. Returns the function
 * that stops it (the gateway cancels the upstream request). Over graphql-ws first; when the WebSocket never
 * connects (blocked, or refused by a proxy), the same subscription runs over SSE and later ones go there directly.
 */
export function subscribe(key, query, variables, onEvent, onEnd) {
  let ended = false;
  let stop = () => undefined;
  const end = (err) => {
    if (ended) return;
    ended = true;
    onEnd(err);
  };
  const sink = (onSocketError) => ({
    next: (r) => (r.errors?.length ? end(toApiError(r.errors[0])) : onEvent(r.data)),
    error: onSocketError,
    complete: () => end(null),
  });
  const overSse = () => {
    stop = sseClientFor(key).subscribe(
      { query, variables },
      sink((e) => end(sseError(e))),
    );
  };
  if (transport === 'sse') {
    overSse();
  } else {
    const client = wsClientFor(key);
    stop = client.subscribe(
      { query, variables },
      sink((e) => {
        if (!client.everConnected && !isRefusal(e) && !ended) {
          useTransport('sse');
          overSse();
          return;
        }
        end(socketError(e));
      }),
    );
  }
  return () => {
    ended = true;
    stop();
  };
}

/** A close the gateway itself chose (a 4xxx code, 1013): the WebSocket works, so no fallback. */
const isRefusal = (e) => Array.isArray(e) || (e && typeof e.code === 'number' && (e.code >= 4000 || e.code === 1013));

function sseError(e) {
  if (Array.isArray(e) && e.length) return toApiError(e[0]);
  const status = e?.response?.status;
  if (status) return new ApiError(`The gateway answered HTTP ${status} to the event stream.`, `HTTP_${status}`);
  return new ApiError('The streaming connection failed. Is the gateway running?', 'NETWORK');
}

function socketError(e) {
  if (Array.isArray(e) && e.length) return toApiError(e[0]);
  if (e && typeof e.code === 'number') {
    // The gateway closes with 4401 when the key in connectionParams is refused (its reason starts with the code).
    if (e.code === 4401 || e.code === 4403)
      return new ApiError(`The gateway refused this key on the WebSocket (${e.reason || 'no reason given'}).`, 'UNAUTHENTICATED');
    return new ApiError(`The streaming connection closed (code ${e.code}${e.reason ? `: ${e.reason}` : ''}).`, 'CONNECTION_CLOSED');
  }
  return new ApiError('The streaming connection failed. Is the gateway running?', 'NETWORK');
}

const seconds = (ms) => Math.max(1, Math.ceil(ms / 1000));
/** A message as a sentence: one full stop at the end. */
const sentence = (m) =>
  `${String(m ?? '')
    .trim()
    .replace(/[.]+$/, '')}.`;

/** What a person needs to read about an error: what happened, and what to do next. */
export function describeError(e) {
  const x = e.extensions ?? {};
  switch (e.code) {
    case 'BUDGET_EXCEEDED':
      return (
        `Budget exceeded: $${x.remainingUsd ?? '?'} is left this month, not enough for this request ` +
        "(it reserves Max tokens at the model's price until it ends). Lower Max tokens, or ask an admin to raise the budget."
      );
    case 'RATE_LIMITED': {
      const ms = Number(x.retryAfterMs ?? 0);
      const at = new Date(Date.now() + ms).toLocaleTimeString();
      return `Rate limited: too many requests or tokens this minute. Retry in ${seconds(ms)} s (at ${at}).`;
    }
    case 'UNAUTHENTICATED':
      return `Key not accepted: ${sentence(e.message)} Check the key and paste it again.`;
    case 'FORBIDDEN':
      if (x.reason === 'SUSPENDED') return `Suspended: ${sentence(e.message)}`;
      if (x.reason === 'MODEL_NOT_ALLOWED' || x.reason === 'MODEL_DISABLED') return `Model not available: ${sentence(e.message)} Pick another profile.`;
      return `Not allowed: ${sentence(e.message)} The admin key manages tenants; chatting needs a tenant key.`;
    case 'UPSTREAM_UNAVAILABLE': {
      const tried = (x.attempts ?? []).map((a) => `${a.model} (${a.error ?? 'failed'})`).join(', ');
      return `No model could answer${tried ? `; tried ${tried}` : ''}. Nothing was charged. Try again shortly.`;
    }
    case 'UPSTREAM_INTERRUPTED':
      return `The model stopped mid-answer: ${sentence(e.message)} You are charged only for what arrived.`;
    case 'SERVICE_UNAVAILABLE':
      return 'The gateway cannot reach its database or cache right now. Nothing was charged; try again shortly.';
    case 'UNPRICED_MODEL':
      return `This profile's model has no price yet, so the gateway refuses it: ${sentence(e.message)}`;
    case 'PAYLOAD_TOO_LARGE':
      return 'The prompt is too long for the gateway. Shorten it.';
    case 'BAD_USER_INPUT':
      return `Check the form: ${sentence(e.message)}`;
    default:
      return sentence(e.message);
  }
}
