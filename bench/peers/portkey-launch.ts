/**
 * Starts Portkey's gateway (installed by `npm run bench:peers` into a scratch folder, never into this project) on
 * 127.0.0.1 only. Its Node entry binds every interface and reads `--port=` from argv, so this launcher sets argv and
 * makes a listen() without a host bind loopback before loading it.
 *
 * Env: PORTKEY_ENTRY (absolute path of @portkey-ai/gateway/build/start-server.js), PORTKEY_PORT.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';

const entry = process.env.PORTKEY_ENTRY;
if (!entry) throw new Error('PORTKEY_ENTRY is not set');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
  // @hono/node-server calls listen(port, hostname, callback) with hostname undefined.
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
    if (args[1] === undefined) args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && !(args[0] as net.ListenOptions).path) {
    args[0] = { ...(args[0] as net.ListenOptions), host: '127.0.0.1' };
  }
  return listen.apply(this, args as Parameters<typeof listen>);
} as typeof listen;

process.argv = [process.argv[0]!, entry, `--port=${process.env.PORTKEY_PORT}`, '--headless'];
void import(pathToFileURL(entry).href);
