import { createHash } from 'node:crypto';
import { AppError } from '../errors';
import type { Db } from '../infra/prisma';
import type { KeySignals } from './key-signals';

/** What the first request of a key ended with, replayed to every retry. */
export type StoredOutcome =
  | { readonly kind: 'result'; readonly value: unknown }
  | { readonly kind: 'error'; readonly code: AppError['code']; readonly message: string; readonly extensions: Record<string, unknown> };

export type Claim = { readonly kind: 'owner' } | { readonly kind: 'replay'; readonly outcome: StoredOutcome };

export interface Idempotency {
  /** Owner: run the request, then `finish` or `release`. Replay: the first request's outcome. Waits while another runs. */
  claim(tenantId: string, key: string, inputHash: string, signal?: AbortSignal): Promise<Claim>;
  /**
   * One indexed read, before admission: the outcome of a finished first request with this key and input (replayed
   * without admission, counting nothing), else null. Another input under the key: IDEMPOTENCY_MISMATCH.
   */
  peek(tenantId: string, key: string, inputHash: string): Promise<StoredOutcome | null>;
  finish(tenantId: string, key: string, outcome: StoredOutcome): Promise<void>;
  /** The first request failed with nothing charged: a retry runs afresh. */
  release(tenantId: string, key: string): Promise<void>;
  /** Deletes keys past their expiry (an expired key is already treated as absent; this only reclaims the rows). */
  purgeExpired(): Promise<number>;
}

/** A stable hash of what makes two requests "the same input" (JSON with sorted keys). */
export function hashInput(value: unknown): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(value)))
    .digest('hex');
}

const mismatch = () =>
  new AppError('IDEMPOTENCY_MISMATCH', 'idempotencyKey: this key was used with a different input; use a new key for a new request', {
    field: 'idempotencyKey',
  });

const RECHECK_ONLY: KeySignals = {
  ready: Promise.resolve(),
  waiting: 0,
  listen: () => ({ next: (ms) => new Promise((r) => setTimeout(r, ms)), close: () => undefined }),
  notify: async () => undefined,
  close: async () => undefined,
};

/** The id a key's wake-ups travel under (tenant-scoped like the key). */
const signalId = (tenantId: string, key: string) => `${tenantId}\n${key}`;

/**
 * Keys live in Postgres (shared by every instance), scoped by tenant: another tenant's identical key is another
 * row. A RUNNING row carries the owner's lease; if the owner dies, a retry takes the key over after the lease.
 * A retry that finds the first request running waits for its wake-up (`signals`: finish and release publish one)
 * rather than polling, and looks at the row again every `recheckMs` only in case a wake-up was lost.
 */
export function makeIdempotency(deps: { db: Db; ttlMs: number; ownerLeaseMs: number; signals?: KeySignals; recheckMs?: number }): Idempotency {
  const { db } = deps;
  // Without wake-ups (a tool that only purges), a waiter just looks again every recheckMs.
  const signals = deps.signals ?? RECHECK_ONLY;
  const recheckMs = deps.recheckMs ?? 1_000;

  /** A stored result from before ChatResult.outcome existed takes the outcome of its ledger row. */
  async function withOutcome(o: StoredOutcome): Promise<StoredOutcome> {
    if (o.kind !== 'result') return o;
    const v = o.value as { requestId?: string; outcome?: string };
    if (v.outcome || !v.requestId) return o;
    const row = await db.ledgerEntry.findUnique({ where: { requestId: v.requestId }, select: { outcome: true } });
    return { kind: 'result', value: { ...v, outcome: row?.outcome ?? 'COMPLETED' } };
  }

  async function tryInsert(tenantId: string, key: string, inputHash: string): Promise<boolean> {
    const now = Date.now();
    const n = await db.$executeRaw`
      INSERT INTO idempotency_keys (tenant_id, key, input_hash, state, lease_expires_at, created_at, expires_at)
      VALUES (${tenantId}::uuid, ${key}, ${inputHash}, 'RUNNING', ${new Date(now + deps.ownerLeaseMs)}, ${new Date(now)}, ${new Date(now + deps.ttlMs)})
      ON CONFLICT (tenant_id, key) DO UPDATE
        SET input_hash = EXCLUDED.input_hash, state = 'RUNNING', result = NULL, request_id = NULL,
            lease_expires_at = EXCLUDED.lease_expires_at, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at < now()
           OR (idempotency_keys.state = 'RUNNING' AND idempotency_keys.lease_expires_at < now())`;
    return n === 1;
  }

  return {
    async claim(tenantId, key, inputHash, signal) {
      let listener: ReturnType<KeySignals['listen']> | null = null;
      try {
        for (;;) {
          if (signal?.aborted) throw new AppError('BAD_USER_INPUT', 'idempotencyKey: the request was cancelled while waiting for the first one');
          if (await tryInsert(tenantId, key, inputHash)) return { kind: 'owner' };
          const row = await db.idempotencyKey.findUnique({ where: { tenantId_key: { tenantId, key } } });
          if (!row) continue; // released meanwhile: try to take it
          if (row.inputHash !== inputHash) {
            throw mismatch();
          }
          if (row.state === 'DONE') return { kind: 'replay', outcome: await withOutcome(row.result as unknown as StoredOutcome) };
          // The first request is still running. Listen first, then look once more, so a wake-up sent in between
          // is not missed; after that, wait for one (or the recheck, or the owner's lease running out).
          if (!listener) {
            listener = signals.listen(signalId(tenantId, key));
            continue;
          }
          const leaseLeft = row.leaseExpiresAt.getTime() - Date.now();
          await listener.next(Math.max(10, Math.min(recheckMs, leaseLeft + 10)), signal);
        }
      } finally {
        listener?.close();
      }
    },
    async peek(tenantId, key, inputHash) {
      const row = await db.idempotencyKey.findUnique({ where: { tenantId_key: { tenantId, key } } });
      if (!row || row.expiresAt < new Date()) return null;
      if (row.inputHash !== inputHash) throw mismatch();
      return row.state === 'DONE' ? withOutcome(row.result as unknown as StoredOutcome) : null;
    },
    async finish(tenantId, key, outcome) {
      await db.idempotencyKey.update({
        where: { tenantId_key: { tenantId, key } },
        data: { state: 'DONE', result: outcome as object },
      });
      await signals.notify(signalId(tenantId, key));
    },
    async release(tenantId, key) {
      await db.idempotencyKey.deleteMany({ where: { tenantId, key, state: 'RUNNING' } });
      await signals.notify(signalId(tenantId, key));
    },
    async purgeExpired() {
      return (await db.idempotencyKey.deleteMany({ where: { expiresAt: { lt: new Date() } } })).count;
    },
  };
}
