import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { periodic } from '../infra/periodic';

/** A request in flight on this process: its delivered completion tokens so far and the model streaming them. */
export interface InFlight {
  tokens: number;
  model: string | null;
  /**
   * Aborted when a flush finds the request's row no longer HELD: another instance's reaper settled it (this
   * process lost Postgres for longer than the lease). The request must stop its upstream call at once.
   */
  readonly lost: AbortSignal;
  /** Aborted when a flush finds the request's tenant suspended: the request must end (outcome SUSPENDED). */
  readonly suspended: AbortSignal;
}

interface Tracked extends InFlight {
  readonly lose: AbortController;
  readonly suspend: AbortController;
  readonly startedAt: Date;
}

export interface Checkpointer {
  /** Tracks a request until `release`; its lease is renewed and its token count recorded with every flush. */
  track(requestId: string, startedAt: Date): InFlight;
  release(requestId: string): void;
  /** One UPDATE for every request in flight; called every interval. */
  flush(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
  readonly size: number;
}

/**
 * Checkpoints are batched across requests: a thousand open streams are one UPDATE a second, not a thousand. Each
 * flush also renews the lease of every request in flight, so the reaper only ever settles rows of dead processes.
 *
 * The same UPDATE reports which of them belong to a suspended tenant, and those are told to end: a suspension
 * reaches every instance's running requests within one interval, from Postgres (the truth, which a lost pub/sub
 * message or a Redis failover cannot hide), at no extra statement.
 */
export function makeCheckpointer(deps: { db: Db; leaseMs: number; intervalMs: number; logger: Logger }): Checkpointer {
  const inflight = new Map<string, Tracked>();
  let running: Promise<void> | null = null;

  const flushOnce = async () => {
    if (inflight.size === 0) return;
    const ids: string[] = [];
    const tokens: number[] = [];
    const models: (string | null)[] = [];
    // The rows' started_at bounds prune the UPDATE to their month's partition (two just after a month begins).
    let from = Infinity;
    let to = -Infinity;
    for (const [id, f] of inflight) {
      ids.push(id);
      tokens.push(f.tokens);
      models.push(f.model);
      from = Math.min(from, f.startedAt.getTime());
      to = Math.max(to, f.startedAt.getTime());
    }
    // Postgres time only: an instance whose clock is off must neither shorten nor stretch a lease.
    const renewed = await deps.db.$queryRaw<{ request_id: string; suspended: boolean }[]>`
      UPDATE usage_ledger AS l
         SET checkpoint_tokens = v.tokens,
             checkpoint_model = COALESCE(v.model, l.checkpoint_model),
             lease_expires_at = now() + ${deps.leaseMs} * interval '1 millisecond'
        FROM unnest(${ids}::uuid[], ${tokens}::int[], ${models}::text[]) AS v(id, tokens, model)
       WHERE l.request_id = v.id AND l.state = 'HELD' AND l.started_at BETWEEN ${new Date(from)} AND ${new Date(to)}
      RETURNING l.request_id,
                EXISTS (SELECT 1 FROM tenants t WHERE t.id = l.tenant_id AND t.suspended_at IS NOT NULL) AS suspended`;
    for (const r of renewed) {
      if (r.suspended) inflight.get(r.request_id)?.suspend.abort(new Error('the tenant was suspended'));
    }
    if (renewed.length === ids.length) return;
    const alive = new Set(renewed.map((r) => r.request_id));
    for (const id of ids) {
      const f = inflight.get(id);
      // Not renewed: the row was settled, by this request itself just now (harmless) or by a reaper elsewhere.
      if (f && !alive.has(id)) f.lose.abort(new Error('lease lost: the row was settled by another instance'));
    }
  };

  const flush = async () => {
    if (running) return running;
    running = flushOnce()
      .catch((e) => deps.logger.warn({ err: e }, 'checkpoint flush failed; leases not renewed this round'))
      .finally(() => (running = null));
    return running;
  };

  // flush logs its own failures, so the job's error handler never runs.
  const job = periodic(flush, deps.intervalMs, () => undefined);

  return {
    track(requestId, startedAt) {
      const lose = new AbortController();
      const suspend = new AbortController();
      const f: Tracked = { tokens: 0, model: null, lose, lost: lose.signal, suspend, suspended: suspend.signal, startedAt };
      inflight.set(requestId, f);
      return f;
    },
    release(requestId) {
      inflight.delete(requestId);
    },
    flush,
    start: job.start,
    async stop() {
      await job.stop();
      await running;
    },
    get size() {
      return inflight.size;
    },
  };
}
