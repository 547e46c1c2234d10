import { periodic } from '../infra/periodic';
import type { Logger } from '../infra/logger';
import type { SettleInput } from '../limits';
import type { GateLedger, PendingSettlement } from './gate-ledger';
import { monthOf } from './period';

/** The limiter's idempotent settle (per request id: a second call applies nothing). */
export interface GateSettle {
  settle(i: SettleInput): Promise<{ applied: boolean }>;
}

/** One settle version of a ledger row, as the gate takes it. */
export interface GateSettlement {
  readonly tenantId: string;
  readonly requestId: string;
  /** The row's API key: its share of the gate (spent, tokens window) moves with the tenant's. */
  readonly apiKeyId: string | null;
  readonly startedAt: Date;
  /** 1: the settlement (releases the hold); 2: the amendment (adds the late cost under its own marker id). */
  readonly version: 1 | 2;
  readonly actualMicros: bigint;
  readonly actualTokens: number;
  readonly tokensEstimate: number;
}

export interface GateApplier {
  /**
   * Applies one settle version to the gate and records it in the ledger (batched). Waits at most `waitMs` for
   * Redis: true when Redis confirmed in time. It never throws; what does not land is retried by the pending pass.
   */
  apply(s: GateSettlement, waitMs: number): Promise<boolean>;
  /** Applies every settlement pending longer than the grace period; returns how many versions reached the gate. */
  applyPendingOnce(): Promise<number>;
  /** Writes the queued confirmations now. */
  flush(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

const CONFIRM_BATCH_MS = 100;

/** The marker id of a settle version: the request id itself for the first, a distinct one per amendment. */
const gateRequestId = (requestId: string, version: number): string => (version === 1 ? requestId : `${requestId}:v${version}`);

/**
 * The ledger is the truth and the gate converges to it. A settlement is in Postgres before the answer goes out;
 * Redis gets it right after, without the answer waiting on a Redis that refuses writes or hangs. Whatever Redis
 * did not confirm stays pending in the ledger, so a pass on every instance (every `intervalMs`) re-applies it until
 * it lands, across restarts. Exactly once: the limiter's settle is idempotent per marker id, so a version applied
 * whose confirmation was lost (crash, Postgres down) is applied again as a no-op and then confirmed.
 */
export function makeGateApplier(deps: {
  gateLedger: GateLedger;
  limiter: GateSettle;
  logger: Logger;
  intervalMs: number;
  /** A settlement younger than this is left to its own request's attempt. */
  graceMs?: number;
  batch?: number;
  /** Told the age of the oldest pending settlement after every pass (metrics). */
  onPendingAge?: (ms: number) => void;
}): GateApplier {
  const confirms = new ConfirmQueue(deps.gateLedger, deps.logger);
  const flush = () => confirms.flush();

  const send = async (s: GateSettlement): Promise<void> => {
    await deps.limiter.settle({
      tenantId: s.tenantId,
      requestId: gateRequestId(s.requestId, s.version),
      month: monthOf(s.startedAt),
      actualMicros: s.actualMicros,
      actualTokens: s.actualTokens,
      tokensEstimate: s.tokensEstimate,
      apiKeyId: s.apiKeyId,
    });
    // applied: false means an earlier call applied it: either way the gate holds this version now.
    confirms.add({ requestId: s.requestId, startedAt: s.startedAt, version: s.version });
  };

  const apply = (s: GateSettlement, waitMs: number): Promise<boolean> => {
    const landed = send(s).then(
      () => true,
      (e) => {
        deps.logger.warn({ err: e, requestId: s.requestId, version: s.version }, 'gate settlement failed; it stays pending and is retried');
        return false;
      },
    );
    return orFalseAfter(landed, waitMs);
  };

  const applyPendingOnce = async (): Promise<number> => {
    let n = 0;
    await flush(); // rows whose confirmation is only queued are not pending
    try {
      const rows = await deps.gateLedger.pending(deps.graceMs ?? 2_000, deps.batch ?? 500);
      for (const r of rows) {
        for (const s of owed(r)) {
          await send(s); // Redis still refusing: stop this pass, the next one retries
          n++;
        }
      }
    } finally {
      await flush();
      if (deps.onPendingAge) {
        const age = await deps.gateLedger.oldestPendingMs().catch(() => null);
        if (age !== null) deps.onPendingAge(age);
      }
    }
    return n;
  };

  const job = periodic(applyPendingOnce, deps.intervalMs, (e) => deps.logger.warn({ err: e }, 'gate applier pass stopped; retrying next interval'));

  return {
    apply,
    applyPendingOnce,
    flush,
    start: job.start,
    async stop() {
      await job.stop();
      await confirms.close();
    },
  };
}

/** The versions a pending row still owes the gate. Deferred: no tokens/min correction (see the README). */
function owed(r: PendingSettlement): GateSettlement[] {
  const out: GateSettlement[] = [];
  const base = { tenantId: r.tenantId, requestId: r.requestId, apiKeyId: r.apiKeyId, startedAt: r.startedAt };
  if (r.gateAppliedVersion < 1) {
    const tokens = r.tokens - r.amendedTokens;
    out.push({ ...base, version: 1, actualMicros: r.costMicros - r.amendedMicros, actualTokens: tokens, tokensEstimate: tokens });
  }
  if (r.settleVersion >= 2 && r.gateAppliedVersion < 2) {
    out.push({ ...base, version: 2, actualMicros: r.amendedMicros, actualTokens: r.amendedTokens, tokensEstimate: 0 });
  }
  return out;
}

/** `p`'s answer, or false once `ms` passed: the request's answer does not wait on a Redis that hangs. */
function orFalseAfter(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  return Promise.race([p, waited]).finally(() => clearTimeout(timer));
}

type Confirmation = { requestId: string; startedAt: Date; version: number };

/**
 * Confirmations of applied versions, written in batches: one UPDATE for all settlements of the last moment, one
 * write at a time. A failed write keeps its batch for the next flush.
 */
class ConfirmQueue {
  private readonly queued: Confirmation[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly gateLedger: GateLedger,
    private readonly logger: Logger,
  ) {}

  add(c: Confirmation): void {
    this.queued.push(c);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, CONFIRM_BATCH_MS);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.queued.length === 0) return;
    const batch = this.queued.splice(0);
    this.flushing = this.gateLedger
      .confirmApplied(batch)
      .catch((e) => {
        // Postgres down: keep them; if this process dies first, the pending pass re-applies them as no-ops.
        this.queued.push(...batch);
        this.logger.warn({ err: e, count: batch.length }, 'could not record gate settlements; retrying');
      })
      .finally(() => (this.flushing = null));
    await this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
