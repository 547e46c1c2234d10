import { Command, type Cluster, type Redis } from 'ioredis';
import type { Logger } from './logger';

/**
 * Keeps the gate exact across a Redis Cluster failover.
 *
 * Replication is asynchronous: a replica promoted after its master died may lack the master's last writes (a hold
 * taken, a settlement applied). Its gate state is then behind the ledger, and admitting against it could overspend.
 * So when a slot gets a new master, this guard
 *
 * 1. fences the gate at once (synchronously, inside ioredis' slot-map update, before any command can reach the
 *    new master): every limits call rejects, and admission fails closed with SERVICE_UNAVAILABLE;
 * 2. deletes every tenant gate key (`<prefix>:{...}`) on the new master(s), which is a per-shard version of the
 *    flush the gate already survives: the next admission finds its month missing (NEEDS_RESEED) and rebuilds
 *    spent, holds and the last minute's rate usage from Postgres, the source of truth;
 * 3. lifts the fence.
 *
 * Every instance does this on its own the first time it sees the new master, so no instance admits against the
 * promoted replica's unverified state. A second instance's sweep after the first one's reseed is a flush during
 * traffic, which the reseed's SET-only design and the settled markers already make safe.
 */
export interface FailoverGuard {
  /**
   * Throws GateFencedError while the slot of `command` (all its keys share one) is being failed over; a command
   * without keys is refused while any slot is. Call before every gate command.
   */
  check(command: Command): void;
  /** True while any slot is fenced. */
  readonly fenced: boolean;
  /** Resolves when no rebuild is running (tests, shutdown). */
  idle(): Promise<void>;
  /** How many failovers this instance has handled. */
  readonly failovers: number;
}

class GateFencedError extends Error {
  override readonly name = 'GateFencedError';
}

type MasterMap = ReadonlyMap<number, string>;

const nodeKey = (n: Redis): string => `${n.options.host}:${n.options.port}`;

/** Slot -> master node key, from ioredis' slot cache (first entry of each slot is its master). */
function mastersBySlot(cluster: Cluster): MasterMap {
  const map = new Map<number, string>();
  const slots = cluster.slots as unknown as Array<string[] | undefined>;
  for (let s = 0; s < slots.length; s++) {
    const master = slots[s]?.[0];
    if (master) map.set(s, master);
  }
  return map;
}

export function guardFailovers(cluster: Cluster, opts: { logger: Logger; keyPrefix?: string }): FailoverGuard {
  return new FailoverWatch(cluster, opts.logger, opts.keyPrefix ?? 'lg');
}

/** The guard's state, driven by ioredis' cluster events: what it knew of the slot map, what is fenced, what is owed a sweep. */
class FailoverWatch implements FailoverGuard {
  private readonly pattern: string;
  /** Not matched by `pattern`: the sweep leaves its own marker alone. */
  private readonly markerPrefix: string;
  private known: MasterMap | null = null;
  private knownMasters = new Set<string>();
  /** Promoted masters not swept yet. */
  private readonly pending = new Set<string>();
  private rebuild: Promise<void> | null = null;
  /**
   * Slots whose master left, failed, or was replaced and not yet swept. Only these fail closed: tenants on the
   * healthy masters keep working, and their settlements are not lost to a fence they have nothing to do with.
   */
  private readonly fencedSlots = new Set<number>();
  private handled = 0;
  private probing = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly logger: Logger,
    keyPrefix: string,
  ) {
    this.pattern = `${keyPrefix}:{*`;
    this.markerPrefix = `${keyPrefix}:failover`;
    cluster.on('ready', () => {
      if (!this.known) this.remember(mastersBySlot(cluster));
    });
    // A master leaving the pool (its connection ended or the slot map dropped it): fence before any command is
    // redirected to whichever node took its slots.
    cluster.on('-node', (redis: Redis) => {
      const key = nodeKey(redis);
      if (this.knownMasters.has(key)) this.fence(`master ${key} left`, this.slotsOfNode(key));
    });
    // A master's connection failing (killed, partitioned, restarted): fence until a slot refresh says who owns its
    // slots, so a MOVED redirect can never carry a command to a promoted replica before it is swept.
    cluster.on('node error', (_e: unknown, key: string) => {
      if (this.knownMasters.has(key)) this.fence(`master ${key} failing`, this.slotsOfNode(key));
    });
    cluster.on('refresh', () => this.onRefresh());
  }

  check(command: Command): void {
    if (this.fencedSlots.size === 0) return;
    if (command.getKeys().length === 0 || this.fencedSlots.has(command.getSlot())) {
      throw new GateFencedError('Redis Cluster failover in progress: the gate is rebuilding this shard from the ledger');
    }
  }

  get fenced(): boolean {
    return this.fencedSlots.size > 0;
  }

  get failovers(): number {
    return this.handled;
  }

  readonly idle = async (): Promise<void> => {
    while (this.rebuild) await this.rebuild;
  };

  private closing(): boolean {
    const status = this.cluster.status;
    return status === 'disconnecting' || status === 'close' || status === 'end';
  }

  private remember(map: MasterMap): void {
    this.known = map;
    this.knownMasters = new Set(map.values());
  }

  private slotsOfNode(key: string): Set<number> {
    return new Set(this.known ? [...this.known].filter(([, m]) => m === key).map(([s]) => s) : []);
  }

  private fence(why: string, slots: Iterable<number>): void {
    if (this.closing()) return; // our own shutdown
    const before = this.fencedSlots.size;
    for (const s of slots) this.fencedSlots.add(s);
    if (this.fencedSlots.size > before)
      this.logger.warn({ why, slots: this.fencedSlots.size }, 'redis cluster failover: slots fenced, their requests fail closed until the new master is swept');
  }

  private onRefresh(): void {
    const now = mastersBySlot(this.cluster);
    if (!this.known) return this.remember(now);
    const { promoted, moved } = diffMasters(this.known, now);
    if (this.fencedSlots.size)
      this.logger.debug(
        { promoted: [...promoted], fenced: this.fencedSlots.size, rebuilding: !!this.rebuild },
        'redis cluster failover: slot map refreshed while fenced',
      );
    if (promoted.size === 0) {
      // A master had trouble but kept its slots: open again once every master is connected.
      if (this.fencedSlots.size && !this.rebuild && this.pending.size === 0) this.reopenIfMastersAnswer(this.known);
      return;
    }
    this.fence(`slots moved to ${[...promoted].join(', ')}`, moved);
    for (const m of promoted) this.pending.add(m);
    this.remember(now);
    void this.runRebuild();
  }

  /** Open again after a scare only when every master of the current slot map answers. */
  private reopenIfMastersAnswer(map: MasterMap): void {
    if (this.probing) return;
    this.probing = true;
    const masters = new Set(map.values());
    const nodes = this.cluster.nodes('all').filter((n) => masters.has(nodeKey(n)));
    void Promise.all(nodes.map((n) => n.ping()))
      .then(() => {
        if (nodes.length === masters.size && this.known === map && !this.rebuild && this.pending.size === 0) this.fencedSlots.clear();
      })
      .catch(() => undefined)
      .finally(() => (this.probing = false));
  }

  private runRebuild(): Promise<void> {
    return (this.rebuild ??= this.sweepPending());
  }

  /** Keeps going until every newly promoted master has been swept and no new one appeared meanwhile. */
  private async sweepPending(): Promise<void> {
    while (this.pending.size) {
      if (this.closing()) {
        this.rebuild = null; // shutting down: nothing left to protect, and no timer may keep the process alive
        return;
      }
      const key = this.pending.values().next().value as string;
      try {
        const sweep = { pattern: this.pattern, markerPrefix: this.markerPrefix, logger: this.logger, closing: () => this.closing() };
        await sweepPromotedMaster(this.cluster, key, this.slotsOfNode(key), sweep);
        this.pending.delete(key);
      } catch (e) {
        this.logger.warn({ err: e, node: key }, 'redis cluster failover: sweep failed; retrying after the next slot refresh');
        await new Promise<void>((r) => this.cluster.refreshSlotsCache(() => r()));
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.handled++;
    this.fencedSlots.clear();
    this.rebuild = null;
    this.logger.warn('redis cluster failover handled: gate open again');
  }
}

/** Masters that took slots since `before` (a promotion, or a resharding), and those slots. */
function diffMasters(before: MasterMap, now: MasterMap): { promoted: Set<string>; moved: number[] } {
  const promoted = new Set<string>();
  const moved: number[] = [];
  for (const [slot, master] of now) {
    if (before.get(slot) !== master) {
      promoted.add(master);
      moved.push(slot);
    }
  }
  return { promoted, moved };
}

/** A hash tag whose slot is one of `slots`, so the marker lives on that master. */
function tagOn(slots: Set<number>): string {
  for (let i = 0; i < 1_000_000; i++) if (slots.has(new Command('get', [`{${i}}`]).getSlot()!)) return String(i);
  throw new Error("no hash tag found for the node's slots");
}

/**
 * Deletes the gate keys on a newly promoted master, once per promotion across all instances. `slots` are the
 * master's (its marker lives there).
 */
async function sweepPromotedMaster(
  cluster: Cluster,
  key: string,
  slots: Set<number>,
  o: { pattern: string; markerPrefix: string; logger: Logger; closing: () => boolean },
): Promise<void> {
  const node = cluster.nodes('master').find((n) => nodeKey(n) === key);
  if (!node) throw new Error(`node ${key} is not a master in the current slot map`);
  // One sweep per promotion across all instances, finished before any of them lets a request through: a second
  // instance sweeping later would delete the reseeds and settled markers of traffic the first one already let in.
  // A promoted replica gets a new replication id, so the marker names this promotion and no earlier one.
  const replid = /master_replid:(\w+)/.exec(String(await node.info('replication')))?.[1];
  if (!replid) throw new Error(`node ${key} reports no replication id`);
  const marker = `${o.markerPrefix}:{${tagOn(slots)}}:${replid}`;
  for (;;) {
    if (o.closing()) return;
    if ((await node.set(marker, 'sweeping', 'PX', 30_000, 'NX')) === 'OK') break;
    if ((await node.get(marker)) === 'done') return; // another instance swept this promotion
    o.logger.debug({ node: key, marker }, 'redis cluster failover: another instance is sweeping; waiting');
    await new Promise((r) => setTimeout(r, 100)); // it is sweeping now (or died: the lock expires)
  }
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', o.pattern, 'COUNT', 1000);
    cursor = next;
    // UNLINK of keys in different slots is allowed on one node only one slot at a time: delete key by key.
    if (keys.length) deleted += (await Promise.all(keys.map((k) => node.unlink(k)))).reduce((a, b) => a + b, 0);
  } while (cursor !== '0');
  await node.set(marker, 'done', 'PX', 24 * 3600_000);
  o.logger.warn({ node: key, deleted }, 'redis cluster failover: gate state on the new master dropped; it is reseeded from the ledger');
}
