import type Redis from 'ioredis';
import type { Logger } from '../infra/logger';
import { eventFromJson, eventToJson, type BudgetEventView } from './types';

/**
 * The budgetEvents subscription's fan-out across instances: the delivery job of whichever instance claims an outbox
 * row publishes it once on Redis; every instance's one subscriber connection hands it to its own subscribers. Live
 * only: a subscriber gets the events published while it is subscribed (the alert log has the history).
 */
export interface BudgetEventHub {
  /** Publishes on every instance; rejects when Redis does not take it (the outbox row then stays unpublished). */
  publish(e: BudgetEventView): Promise<void>;
  /** Events passing `accept`, until `signal` aborts, return() is called or the hub closes. */
  listen(accept: (e: BudgetEventView) => boolean, signal: AbortSignal): AsyncIterableIterator<BudgetEventView>;
  readonly ready: Promise<void>;
  /** Ends every listener (before the HTTP server drains, so open streams do not hold shutdown up). */
  close(): Promise<void>;
}

/** A slow subscriber keeps at most this many events; older ones are dropped (it can read the alert log). */
const MAX_QUEUED = 1_000;

export function makeBudgetEventHub(deps: { publisher: Pick<Redis, 'publish'>; subscriber: Redis; logger: Logger; channel?: string }): BudgetEventHub {
  const channel = deps.channel ?? 'lg:budget-events';
  const listeners = new Set<{ push(e: BudgetEventView): void; end(): void }>();
  const ready = deps.subscriber.subscribe(channel).then(
    () => undefined,
    (e) => deps.logger.warn({ err: e }, 'budgetEvents fan-out unavailable: subscribers on this instance get no events'),
  );
  const onMessage = (ch: string, msg: string) => {
    if (ch !== channel) return;
    let e: BudgetEventView;
    try {
      e = eventFromJson(msg);
    } catch (err) {
      deps.logger.warn({ err }, 'unreadable budget event on the fan-out channel');
      return;
    }
    for (const l of listeners) l.push(e);
  };
  deps.subscriber.on('message', onMessage);

  function listen(accept: (e: BudgetEventView) => boolean, signal: AbortSignal): AsyncIterableIterator<BudgetEventView> {
    const queue: BudgetEventView[] = [];
    let ended = false;
    let wake: (() => void) | null = null;
    const l = {
      push(e: BudgetEventView) {
        if (!accept(e)) return;
        if (queue.length >= MAX_QUEUED) queue.shift();
        queue.push(e);
        wake?.();
      },
      end() {
        ended = true;
        listeners.delete(l);
        signal.removeEventListener('abort', l.end);
        wake?.();
      },
    };
    listeners.add(l);
    if (signal.aborted) l.end();
    else signal.addEventListener('abort', l.end, { once: true });
    const it: AsyncIterableIterator<BudgetEventView> = {
      async next() {
        while (queue.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
        wake = null;
        const e = queue.shift();
        return e ? { value: e, done: false } : { value: undefined, done: true };
      },
      async return() {
        l.end();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  return {
    ready,
    async publish(e) {
      await deps.publisher.publish(channel, eventToJson(e));
    },
    listen,
    async close() {
      for (const l of [...listeners]) l.end();
      deps.subscriber.off('message', onMessage);
      await ready;
    },
  };
}
