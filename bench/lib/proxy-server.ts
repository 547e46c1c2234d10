/**
 * The floor: a bare pass-through proxy over undici, no GraphQL, no checks. Every request is forwarded as it is to
 * PROXY_UPSTREAM and the answer streamed back. What any Node process in the middle costs on this machine.
 */
import http from 'node:http';
import { Pool } from 'undici';

const pool = new Pool(process.env.PROXY_UPSTREAM!, { connections: 1024, keepAliveTimeout: 65_000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length']);

const server = http.createServer((req, res) => {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
  pool.request({ method: req.method as 'POST', path: req.url!, headers, body: req.method === 'GET' ? null : req }).then(
    ({ statusCode, headers: h, body }) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(h)) if (!HOP.has(k) && v !== undefined) out[k] = v;
      res.writeHead(statusCode, out);
      body.pipe(res);
    },
    () => res.writeHead(502).end(),
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PROXY_PORT ?? 0), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)) && server.closeAllConnections());
