import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './logger';

/** What a worker tells the primary once it serves. */
interface ListeningMessage {
  readonly type: 'listening';
  readonly port: number;
}

const isListening = (m: unknown): m is ListeningMessage => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'listening';

/** In a worker: tells the primary it serves on `port` (all workers share it through node:cluster). */
export function announceListening(port: number): void {
  process.send?.({ type: 'listening', port } satisfies ListeningMessage);
}

/**
 * WORKERS=N: the primary process forks N workers that all accept connections on one port (node:cluster hands them
 * out round-robin). Each worker is a whole gateway instance, with its own Postgres and Redis pools and its own
 * background jobs: every job is already safe on many instances at once (row states, settled markers,
 * compare-and-set, advisory locks), so N workers behave as N instances behind a balancer. The primary serves
 * nothing; it only:
 *
 * - reports readiness once every worker listens (`onReady` with the shared port);
 * - replaces a worker that dies after it served (a crash) and gives up when one dies before it ever listened
 *   (a startup failure, e.g. Postgres unreachable, that a new fork would only repeat);
 * - passes SIGTERM/SIGINT to every worker, which drains as a single process does, and exits once all have
 *   (0 when every worker stopped cleanly), or after `forceAfterMs` (1).
 *
 * `env` goes to every worker, e.g. the admin key the primary generated, so that all of them accept the same one.
 */
export function runWorkers(o: { count: number; env: NodeJS.ProcessEnv; logger: Logger; forceAfterMs: number; onReady: (port: number) => void }): void {
  const listening = new Set<number>();
  let stopping = false;
  let failed = false;
  let ready = false;

  const fork = (): Worker => {
    const w = cluster.fork(o.env);
    w.on('message', (m: unknown) => {
      if (!isListening(m)) return;
      listening.add(w.id);
      if (!ready && listening.size === o.count) {
        ready = true;
        o.onReady(m.port);
      }
    });
    return w;
  };

  const alive = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    o.logger.info({ signal, workers: alive().length }, 'draining every worker');
    for (const w of alive()) w.process.kill('SIGTERM');
    const force = setTimeout(() => {
      o.logger.error('workers took too long to drain; exiting');
      process.exit(1);
    }, o.forceAfterMs);
    force.unref();
  };

  cluster.on('exit', (w, code, signal) => {
    const served = listening.delete(w.id);
    const clean = code === 0;
    if (!clean) failed = true;
    if (stopping) {
      if (alive().length === 0) process.exit(failed ? 1 : 0);
      return;
    }
    if (!served) {
      o.logger.error({ worker: w.id, code, signal }, 'a worker failed before it served; stopping the others');
      stop('worker startup failure');
      return;
    }
    o.logger.error({ worker: w.id, code, signal }, 'a worker died; starting another (its requests in flight are settled by the reaper)');
    failed = false;
    fork();
  });

  for (let i = 0; i < o.count; i++) fork();
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
