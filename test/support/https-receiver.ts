import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export interface ReceivedHook {
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export interface HttpsReceiver {
  /** https://127.0.0.1:<port> */
  readonly origin: string;
  readonly port: number;
  /** The self-signed certificate (PEM file) the receiver serves: the gateway's ALERT_WEBHOOK_CA_FILE. */
  readonly caFile: string;
  readonly received: ReceivedHook[];
  /** The status to answer a request with (default 200). */
  answer: (h: ReceivedHook) => number;
  close(): Promise<void>;
}

/**
 * A webhook receiver over real TLS with a certificate made at test time (openssl, into a temp dir) for 127.0.0.1
 * and localhost, on port 0.
 */
export async function startHttpsReceiver(): Promise<HttpsReceiver> {
  const dir = await mkdtemp(path.join(tmpdir(), 'alerts-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  const received: ReceivedHook[] = [];
  const r: HttpsReceiver = {
    origin: '',
    port: 0,
    caFile: cert,
    received,
    answer: () => 200,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const h = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(h);
      res.statusCode = r.answer(h);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(r, { port, origin: `https://127.0.0.1:${port}` });
}
