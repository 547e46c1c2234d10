import type Redis from 'ioredis';
import { AppError } from '../errors';
import type { Logger } from '../infra/logger';

/**
 * Wake-ups for idempotent retries waiting on their first request, across instances: one Redis pub/sub
 * subscription per process, fanned out to the waiters of each key. A message only says "look again"; the key's row
 * in Postgres stays the truth, and a waiter also looks again after `fallbackMs` in case a message was lost (Redis
 * reconnecting, a publish that failed).
 */
export interface KeySignals {
  /** Starts listening for `id`. RATE_LIMITED (limit IDEMPOTENCY_WAITERS, retryAfterMs 1000) past the cap of waiters. */
  listen(id: string): KeyListener;
  /** Wakes every listener of `id` on every instance. Best effort (logged): listeners fall back to looking again. */
  notify(id: string): Promise<void>;
  close(): Promise<void>;
  /** Settles once the subscription is in place (or has failed: waiters then rely on looking again). */
  readonly ready: Promise<void>;
  /** Listeners open in this process. */
  readonly waiting: number;
}

export interface KeyListener {
  /** Resolves at the next signal for the key (at once if one came since the last call), after `ms`, or on abort. */
  next(ms: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

export const IDEMPOTENCY_WAITERS_RETRY_MS = 1_000;

export function makeKeySignals(deps: {
  publisher: Pick<Redis, 'publish'>;
  subscriber: Redis;
  maxWaiters: number;
  logger: Logger;
  channel?: string;
}): KeySignals {
  const channel = deps.channel ?? 'lg:idempotency:done';
  const listeners = new Map<string, Set<() => void>>();
  let waiting = 0;
  const subscribed = deps.subscriber.subscribe(channel).then(
    () => undefined,
    (e) => deps.logger.warn({ err: e }, 'idempotency wake-ups unavailable; waiters fall back to looking again'),
  );
  const onMessage = (ch: string, id: string) => {
    if (ch === channel) listeners.get(id)?.forEach((wake) => wake());
  };
  deps.subscriber.on('message', onMessage);

  return {
    ready: subscribed,
    get waiting() {
      return waiting;
    },
    listen(id) {
      if (waiting >= deps.maxWaiters) {
        throw new AppError(
          'RATE_LIMITED',
          `too many retries are already waiting for their first request on this instance (${deps.maxWaiters}); retry in ${IDEMPOTENCY_WAITERS_RETRY_MS} ms`,
          { retryAfterMs: IDEMPOTENCY_WAITERS_RETRY_MS, limit: 'IDEMPOTENCY_WAITERS' },
        );
      }
      waiting++;
      let signalled = false;
      let resolveNext: (() => void) | null = null;
      const wake = () => {
        signalled = true;
        resolveNext?.();
      };
      const set = listeners.get(id) ?? new Set();
      set.add(wake);
      listeners.set(id, set);
      let closed = false;
      return {
        next(ms, signal) {
          if (signalled || signal?.aborted) {
            signalled = false;
            return Promise.resolve();
          }
          return new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              signal?.removeEventListener('abort', done);
              resolveNext = null;
              signalled = false;
              resolve();
            };
            const timer = setTimeout(done, ms);
            signal?.addEventListener('abort', done, { once: true });
            resolveNext = done;
          });
        },
        close() {
          if (closed) return;
          closed = true;
          waiting--;
          set.delete(wake);
          if (set.size === 0 && listeners.get(id) === set) listeners.delete(id);
          resolveNext?.();
        },
      };
    },
    async notify(id) {
      await deps.publisher.publish(channel, id).catch((e) => deps.logger.warn({ err: e }, 'idempotency wake-up not published; waiters look again shortly'));
    },
    async close() {
      await subscribed;
      deps.subscriber.off('message', onMessage);
    },
  };
}
