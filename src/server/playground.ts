import path from 'node:path';
import express from 'express';
import { PROJECT_ROOT } from '../infra/project-root';

/** The page's own files: plain ES modules, HTML and CSS, served as they are (no build step). */
const ASSETS = path.join(PROJECT_ROOT, 'src/playground');
/** graphql-ws's browser (UMD) build from node_modules: it defines window.graphqlWs. Never from a CDN. */
const GRAPHQL_WS_UMD = path.join(path.dirname(require.resolve('graphql-ws')), '../umd/graphql-ws.min.js');
/** graphql-sse's browser build (window.graphqlSse): the page's fallback when a WebSocket cannot connect. */
const GRAPHQL_SSE_UMD = path.join(path.dirname(require.resolve('graphql-sse')), '../umd/graphql-sse.min.js');

/** Everything the page loads comes from this origin; the WebSocket goes back to it ('self' covers ws: in CSP 3). */
const CSP = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const headers: express.RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  });
  next();
};

/**
 * The web playground: GET / is the page, /playground/* its modules and styles, /playground/vendor/graphql-ws.js the
 * graphql-ws client. The page talks to /graphql with the key the person pastes (kept in sessionStorage).
 */
export function mountPlayground(app: express.Express): void {
  app.get('/', headers, (_req, res) => res.sendFile(path.join(ASSETS, 'index.html')));
  app.get('/playground/vendor/graphql-ws.js', headers, (_req, res) => res.type('text/javascript').sendFile(GRAPHQL_WS_UMD));
  app.get('/playground/vendor/graphql-sse.js', headers, (_req, res) => res.type('text/javascript').sendFile(GRAPHQL_SSE_UMD));
  app.use('/playground', headers, express.static(ASSETS, { index: false, redirect: false, fallthrough: true, etag: true }));
}
