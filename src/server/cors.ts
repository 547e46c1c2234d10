import type { IncomingMessage, ServerResponse } from 'node:http';
import type express from 'express';

/**
 * Which browser origins may call /graphql (CORS) and open its WebSocket. `origins` null: the development default,
 * any localhost origin (http or https, any port); an empty list: none (production's default). Requests without an
 * Origin header are not from a browser page and are not subject to this.
 *
 * Hand-written rather than the `cors` package because the same decision also guards the WebSocket upgrade, where
 * no CORS applies and the server itself must refuse a foreign page.
 */
export function makeOriginPolicy(origins: readonly string[] | null) {
  const listed = new Set((origins ?? []).map((o) => o.toLowerCase()));
  const localhost = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i;
  return (origin: string): boolean => (origins === null ? localhost.test(origin) : listed.has(origin.toLowerCase()));
}

export type OriginPolicy = ReturnType<typeof makeOriginPolicy>;

/** Headers a page on another origin may read from a response: the backoff and the id to quote in a report. */
const EXPOSED = ['Retry-After', 'X-Request-Id'];
const EXPOSED_HEADER = EXPOSED.join(', ');
const METHODS = 'GET, POST, OPTIONS';
const DEFAULT_HEADERS = 'authorization, content-type, accept, x-request-id, apollo-require-preflight, x-apollo-operation-name';

/**
 * The headers of an actual (not preflight) request: Vary: Origin always, and an allowed origin echoed with the
 * headers its page may read. Plain node:http, so /graphql's express-free path applies the same policy. True when
 * the origin is allowed.
 */
export function applyCors(allowed: OriginPolicy, req: IncomingMessage, res: ServerResponse, exposed = EXPOSED_HEADER): boolean {
  const vary = res.getHeader('Vary');
  if (vary === undefined) res.setHeader('Vary', 'Origin');
  else if (!/(^|,)\s*origin\s*(,|$)/i.test(String(vary))) res.setHeader('Vary', `${String(vary)}, Origin`);
  const origin = req.headers.origin;
  const ok = typeof origin === 'string' && allowed(origin);
  if (ok) {
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Expose-Headers', exposed);
  }
  return ok;
}

/**
 * CORS for the API (/graphql and /v1 alike): an allowed origin is echoed (never `*`) with Vary: Origin;
 * a preflight from an allowed origin is answered 204 with the methods and the headers it asked for; a preflight from
 * any other origin is 403 with a message naming CORS_ORIGINS. `expose` adds headers a page may read (beyond
 * Retry-After and X-Request-Id).
 */
export function corsMiddleware(allowed: OriginPolicy, opts: { expose?: readonly string[] } = {}): express.RequestHandler {
  const exposed = [...EXPOSED, ...(opts.expose ?? [])].join(', ');
  return (req, res, next) => {
    const ok = applyCors(allowed, req, res, exposed);
    const origin = req.headers.origin;
    if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return next();
    if (!ok) {
      res.status(403).json({
        errors: [{ message: `origin ${String(origin ?? '(none)').slice(0, 200)} is not allowed; add it to CORS_ORIGINS`, extensions: { code: 'FORBIDDEN' } }],
      });
      return;
    }
    const asked = req.headers['access-control-request-headers'];
    res.setHeader('Access-Control-Allow-Methods', METHODS);
    res.setHeader('Access-Control-Allow-Headers', typeof asked === 'string' && /^[\w\-, ]{1,1000}$/.test(asked) ? asked : DEFAULT_HEADERS);
    res.setHeader('Access-Control-Max-Age', '600');
    res.vary('Access-Control-Request-Headers');
    res.status(204).end();
  };
}

/**
 * The WebSocket upgrade's check: a browser always sends Origin on a WebSocket, even to its own origin, so the page's
 * own origin (Origin's host equal to Host) passes as well as the listed ones; no Origin means no browser.
 */
export function upgradeAllowed(allowed: OriginPolicy, req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
