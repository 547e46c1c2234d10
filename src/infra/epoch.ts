import type Redis from 'ioredis';

export type EpochRedis = Pick<Redis, 'get' | 'incr'>;

/**
 * Cross-instance cache invalidation with one Redis GET per request: every admin change INCRs a global epoch after
 * its Postgres commit; each instance compares the epoch at the start of a request and drops its process caches when
 * it moved. So an admin change applies to the next request on every instance, with no pub/sub race.
 */
export interface Epoch {
  /** Reads the epoch; when it moved since the last call, runs every registered invalidation first. */
  sync(): Promise<void>;
  /** After a committed admin change: move the epoch and drop this process's caches at once. */
  bump(): Promise<void>;
  onChange(invalidate: () => void): void;
}

export function makeEpoch(redis: EpochRedis, key = 'lg:epoch'): Epoch {
  let seen: string | null | undefined;
  const listeners: Array<() => void> = [];
  const invalidateAll = () => listeners.forEach((f) => f());
  return {
    async sync() {
      const now = await redis.get(key);
      if (now !== seen) {
        if (seen !== undefined) invalidateAll();
        seen = now;
      }
    },
    async bump() {
      seen = String(await redis.incr(key));
      invalidateAll();
    },
    onChange(invalidate) {
      listeners.push(invalidate);
    },
  };
}

/** A per-key memo whose entries live until the epoch moves. Bounded: past `max` entries it starts over. */
export class EpochCache<K, V> {
  private readonly map = new Map<K, Promise<V>>();
  constructor(
    epoch: Epoch,
    private readonly load: (key: K) => Promise<V>,
    private readonly max = 10_000,
  ) {
    epoch.onChange(() => this.map.clear());
  }
  get(key: K): Promise<V> {
    let p = this.map.get(key);
    if (!p) {
      if (this.map.size >= this.max) this.map.clear();
      p = this.load(key);
      this.map.set(key, p);
      // A failed load is not cached: the next request tries again.
      p.catch(() => this.map.get(key) === p && this.map.delete(key));
    }
    return p;
  }
  delete(key: K): void {
    this.map.delete(key);
  }
}
