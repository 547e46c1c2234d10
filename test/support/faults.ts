import net from 'node:net';
import path from 'node:path';
import type Redis from 'ioredis';

/**
 * Fault harness for integration tests on real services. Put a `TcpProxy` in front of Postgres or Redis for one app
 * instance (point that instance's DATABASE_URL / REDIS_URL at `proxy.url(original)`), then inject:
 *
 * - `cut()`      destroy every open connection (as a crashed server or a dropped network would); new ones connect;
 * - `pause()`    keep connections open but hold every byte in both directions (a stalled network or a frozen
 *                server); `resume()` delivers the held bytes in order and lets traffic flow again;
 * - `refuse(on)` close new connections at once (server down); existing ones are untouched;
 * - `delay(ms)`  add latency to every chunk in both directions (0 removes it).
 *
 * Redis refusing writes (a replica after failover): `refuseRedisWrites(redis)` makes the server a replica of nothing
 * and returns a restore function. Use it only on a Redis server the test owns.
 *
 * A skewed app clock: start a server process with `skewedClock(ms)` (node args before its script, plus env); every `Date` in it
 * reads `ms` ahead (negative: behind). Timers and performance.now() are untouched.
 */
export interface TcpProxy {
  readonly port: number;
  /** The same URL with host and port replaced by the proxy's. */
  url(original: string): string;
  cut(): void;
  pause(): void;
  resume(): void;
  refuse(on: boolean): void;
  delay(ms: number): void;
  /** Open client connections right now. */
  readonly connections: number;
  close(): Promise<void>;
}

interface Pipe {
  readonly client: net.Socket;
  readonly server: net.Socket;
}

/** A TCP proxy on 127.0.0.1:0 forwarding to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pipes = new Set<Pipe>();
  let paused = false;
  let refusing = false;
  let delayMs = 0;
  // Chunks held while paused, per direction, delivered in order on resume.
  const held: Array<() => void> = [];

  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk: Buffer) => {
      const send = () => {
        if (!to.destroyed) to.write(chunk);
      };
      if (paused) held.push(send);
      else if (delayMs > 0) setTimeout(() => (paused ? held.push(send) : send()), delayMs);
      else send();
    });
  };

  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pipe: Pipe = { client, server: upstream };
    pipes.add(pipe);
    const end = () => {
      pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const cut = () => {
    held.length = 0;
    for (const p of [...pipes]) {
      p.client.destroy();
      p.server.destroy();
    }
    pipes.clear();
  };

  return {
    port,
    url(original) {
      const u = new URL(original);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const send of held.splice(0)) send();
    },
    refuse(on) {
      refusing = on;
    },
    delay(ms) {
      delayMs = ms;
    },
    get connections() {
      return pipes.size;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Makes the Redis server behind `redis` refuse every write until the returned function restores it, as a node that a
 * failover left a replica does: it becomes a replica of a master that does not exist (127.0.0.1:1), so it keeps its
 * data, answers reads, and refuses every write with -READONLY, inside scripts too. (maxmemory 1 is not enough: a
 * script whose first write frees memory, such as ZREM or DEL, may then write on.)
 */
export async function refuseRedisWrites(redis: Redis): Promise<() => Promise<void>> {
  await redis.call('REPLICAOF', '127.0.0.1', '1');
  return async () => {
    await redis.call('REPLICAOF', 'NO', 'ONE');
  };
}

/** Node arguments and env that make a child process's clock read `skewMs` off (the args go before the script). */
export function skewedClock(skewMs: number): { execArgv: string[]; env: Record<string, string> } {
  return { execArgv: ['--require', path.join(__dirname, 'skew-clock.cjs')], env: { CLOCK_SKEW_MS: String(skewMs) } };
}

export { until } from './wait';
