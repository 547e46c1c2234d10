import { randomUUID } from 'node:crypto';
import { luaScript, runScript, type LimitsRedis } from '../limits/run-script';

export type EpochRedis = LimitsRedis;

/**
 * Cross-instance cache invalidation, one Redis round trip per request.
 *
 * An admin change runs `begin` inside its Postgres transaction, after its writes and before the commit: the epoch
 * moves and the change is registered as pending (with an expiry). If Redis refuses, the transaction rolls back and
 * the mutation answers SERVICE_UNAVAILABLE: a change is never committed without every instance hearing of it. After
 * the commit, `end` moves the epoch again and clears the pending entry.
 *
 * Each instance `sync`s at the start of every request: a moved epoch drops its process caches, and while any change
 * is pending nothing is cached (every read goes to Postgres), so data read between `begin` and the commit can never
 * be kept. If `end` is lost (Redis failing right after the commit), the pending entry expires by itself and caching
 * resumes with the committed data. Cached entries also have a hard maximum age, as a backstop.
 */
export interface Epoch {
  /** Reads the epoch; when it moved since the last call, runs every registered invalidation first. */
  sync(): Promise<void>;
  /** False while an admin change is pending on some instance: callers load without caching. */
  cacheable(): boolean;
  /** Inside the admin change's transaction, before commit. Rejects when Redis refuses (the caller rolls back). */
  begin(): Promise<string>;
  /** After the commit (or the rollback) of the change `begin` returned. Best effort: a lost one expires. */
  end(changeId: string): Promise<void>;
  onChange(invalidate: () => void): void;
  /** Hard maximum age of a cached entry, in ms. */
  readonly maxAgeMs: number;
}

/** Read-only (allowed while Redis refuses writes): the epoch and the number of pending, unexpired changes. */
const SYNC = luaScript(
  'epoch-sync',
  `#!lua flags=no-writes
-- KEYS[1] epoch counter, KEYS[2] zset of pending changes (score: expiry, ms of Redis TIME)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return { redis.call('GET', KEYS[1]) or '0', redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') }
`,
);

/**
 * ARGV[1] change id, ARGV[2] ttl ms. Registers a pending change and moves the epoch. The shebang makes Redis refuse
 * the whole script up front when it refuses writes (a flagless script that has written once may go on writing).
 */
const BEGIN = luaScript(
  'epoch-begin',
  `#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return redis.call('INCR', KEYS[1])
`,
);

/** ARGV[1] change id. The change is committed (or rolled back): no longer pending; the epoch moves again. */
const END = luaScript(
  'epoch-end',
  `#!lua
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[1])
`,
);

export function makeEpoch(redis: EpochRedis, opts: { maxAgeMs: number; pendingTtlMs?: number; key?: string }): Epoch {
  // One hash tag for both keys: the scripts that touch them together must stay in one Redis Cluster slot.
  const key = opts.key ?? '{lg:epoch}';
  const keys = [key, `${key}:pending`];
  // Longer than an admin transaction may take between `begin` and its commit (Prisma's interactive timeout is 5 s).
  const pendingTtlMs = opts.pendingTtlMs ?? 15_000;
  let seen: string | undefined;
  let pending = false;
  const listeners: Array<() => void> = [];
  const invalidateAll = () => listeners.forEach((f) => f());
  const moved = (now: string) => {
    if (now !== seen) {
      if (seen !== undefined) invalidateAll();
      seen = now;
    }
  };
  return {
    maxAgeMs: opts.maxAgeMs,
    async sync() {
      const [now, count] = (await runScript(redis, SYNC, keys, [])) as [string, number];
      pending = Number(count) > 0;
      moved(String(now));
    },
    cacheable: () => !pending,
    async begin() {
      const id = randomUUID();
      await runScript(redis, BEGIN, keys, [id, String(pendingTtlMs)]);
      // This process stops caching at once; the others do at their next sync.
      pending = true;
      invalidateAll();
      return id;
    },
    async end(changeId) {
      await runScript(redis, END, keys, [changeId]);
      invalidateAll();
    },
    onChange(invalidate) {
      listeners.push(invalidate);
    },
  };
}

/**
 * A per-key memo whose entries live until the epoch moves, or `epoch.maxAgeMs` at most; nothing is stored while an
 * admin change is pending. Bounded: past `max` entries it starts over.
 */
export class EpochCache<K, V> {
  private readonly map = new Map<K, { readonly value: Promise<V>; readonly at: number }>();
  constructor(
    private readonly epoch: Epoch,
    private readonly load: (key: K) => Promise<V>,
    private readonly max = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    epoch.onChange(() => this.map.clear());
  }
  get(key: K): Promise<V> {
    if (!this.epoch.cacheable()) return this.load(key);
    const t = this.now();
    const hit = this.map.get(key);
    if (hit && t - hit.at <= this.epoch.maxAgeMs) return hit.value;
    if (this.map.size >= this.max) this.map.clear();
    const entry = { value: this.load(key), at: t };
    this.map.set(key, entry);
    // A failed load is not cached: the next request tries again.
    entry.value.catch(() => this.map.get(key) === entry && this.map.delete(key));
    return entry.value;
  }
  /** The cached entry of `key` if there is a fresh one; never loads. */
  peek(key: K): Promise<V> | undefined {
    const hit = this.epoch.cacheable() ? this.map.get(key) : undefined;
    return hit && this.now() - hit.at <= this.epoch.maxAgeMs ? hit.value : undefined;
  }
  delete(key: K): void {
    this.map.delete(key);
  }
}
