import { timingSafeEqual, createHash } from 'node:crypto';
import { AppError } from '../errors';
import type { Db } from '../infra/prisma';
import { EpochCache, type Epoch } from '../infra/epoch';
import { hashApiKey } from './api-keys';
import type { AuthFailures } from './auth-failures';
import { findKey, touchKey, type KeyRecord } from './key-lookup';
import { ROOT_ACTOR, type Principal } from './principal';

export interface Authenticator {
  /**
   * `Authorization` header value (or graphql-ws connectionParams.authorization) -> principal. UNAUTHENTICATED
   * otherwise; RATE_LIMITED when `clientAddress` has failed too often.
   */
  authenticate(authorization: unknown, clientAddress?: string): Promise<Principal>;
}

const LAST_USED_EVERY_MS = 60_000;
/** Unknown keys remembered per process, so a repeated bad key costs no Postgres query. */
const MAX_UNKNOWN = 10_000;

/**
 * Keys are looked up by SHA-256 and cached per process until the epoch moves (every key creation, rotation, limit
 * change and revocation moves it) or the cache's maximum age passes, so a revoked key is refused on its next request
 * on every instance. A rotated key's old secret stays valid until its grace period ends: the cached row carries that
 * instant and every request compares it with the clock, so it ends on time on every instance without an epoch move.
 * lastUsedAt is written at most once a minute per key and instance, fire-and-forget (never a write per request).
 * Unknown keys are remembered as unknown the same way, apart (so guesses cannot evict real keys), and a client
 * address that keeps failing is refused before its keys reach Postgres at all.
 */
export function makeAuthenticator(deps: { db: Db; adminKey: string; epoch: Epoch; failures: AuthFailures; now?: () => number }): Authenticator {
  const adminDigest = createHash('sha256').update(deps.adminKey).digest();
  const now = deps.now ?? Date.now;
  const lastTouched = new Map<string, number>();
  const keys = new EpochCache(deps.epoch, (hash: string) => findKey(deps.db, hash));
  const unknown = new Map<string, number>();
  deps.epoch.onChange(() => unknown.clear());
  const isKnownUnknown = (hash: string) => {
    const at = unknown.get(hash);
    return at !== undefined && deps.epoch.cacheable() && now() - at <= deps.epoch.maxAgeMs;
  };
  const rememberUnknown = (hash: string) => {
    if (!deps.epoch.cacheable()) return;
    if (unknown.size >= MAX_UNKNOWN) unknown.clear();
    unknown.set(hash, now());
  };

  const touch = (row: KeyRecord) => {
    const t = now();
    if ((lastTouched.get(row.id) ?? 0) + LAST_USED_EVERY_MS > t) return;
    lastTouched.set(row.id, t);
    if (lastTouched.size > 50_000) lastTouched.clear();
    // Best effort and off the request path: lastUsedAt is informational, at one-minute resolution.
    touchKey(deps.db, row.kind, row.id, new Date(t)).catch(() => undefined);
  };

  /** A failed authentication: counted against the address, then UNAUTHENTICATED (or RATE_LIMITED past the limit). */
  const fail = async (clientAddress: string | undefined, message: string): Promise<never> => {
    if (clientAddress) await deps.failures.record(clientAddress);
    throw new AppError('UNAUTHENTICATED', message);
  };

  return {
    async authenticate(authorization, clientAddress) {
      if (typeof authorization !== 'string' || authorization.trim() === '') {
        throw new AppError('UNAUTHENTICATED', 'missing API key: send the header "Authorization: Bearer <key>"');
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
      if (!m) throw new AppError('UNAUTHENTICATED', 'malformed Authorization header: expected "Bearer <key>"');
      const presented = m[1]!;
      const digest = createHash('sha256').update(presented).digest();
      if (timingSafeEqual(digest, adminDigest)) return { kind: 'admin', scope: 'FULL', actor: ROOT_ACTOR };
      const hash = hashApiKey(presented);
      if (isKnownUnknown(hash)) return fail(clientAddress, 'unknown API key');
      // A key not cached yet costs a Postgres lookup: not for an address that keeps failing.
      if (clientAddress && !keys.peek(hash)) await deps.failures.check(clientAddress);
      const row = await keys.get(hash);
      if (!row) {
        keys.delete(hash); // guessed keys must not fill the cache of real ones
        rememberUnknown(hash);
        return fail(clientAddress, 'unknown API key');
      }
      if (row.revokedAt) return fail(clientAddress, 'this API key has been revoked');
      if (row.graceEndsAt && row.graceEndsAt.getTime() <= now()) {
        return fail(clientAddress, `this API key was rotated and its grace period ended at ${row.graceEndsAt.toISOString()}: use the new key`);
      }
      touch(row);
      if (row.kind === 'admin') return { kind: 'admin', scope: row.scope, actor: { name: row.name, keyId: row.id } };
      return { kind: 'tenant', tenantId: row.tenantId, keyId: row.id, keyLimits: row.limits };
    },
  };
}
