import http from 'node:http';
import { startTracing } from './src/telemetry';
(async () => {
  const srv = http.createServer((req, res) => { let b=''; req.on('data', c => b+=c); req.on('end', () => { console.log('GOT', req.url, req.headers['content-type'], b.slice(0, 300)); res.end('{}'); }); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const t = startTracing({ endpoint: `http://127.0.0.1:${(srv.address() as any).port}`, serviceName: 'x' })!;
  const s = t.startSpan('hello', {});
  s.end();
  await t.shutdown();
  console.log('shutdown done');
  srv.close();
})();
