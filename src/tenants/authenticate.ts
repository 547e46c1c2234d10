import { timingSafeEqual, createHash } from 'node:crypto';
import { AppError } from '../errors';
import type { Db } from '../infra/prisma';
import { EpochCache, type Epoch } from '../infra/epoch';
import { hashApiKey } from './api-keys';
import type { Principal } from './principal';

export interface Authenticator {
  /** `Authorization` header value (or graphql-ws connectionParams.authorization) -> principal. UNAUTHENTICATED otherwise. */
  authenticate(authorization: unknown): Promise<Principal>;
}

const LAST_USED_EVERY_MS = 60_000;

/**
 * Keys are looked up by SHA-256 and cached per process until the epoch moves (every revocation moves it), so a
 * revoked key is refused on its next request on every instance. Unknown keys are not cached.
 */
export function makeAuthenticator(deps: { db: Db; adminKey: string; epoch: Epoch; now?: () => number }): Authenticator {
  const adminDigest = createHash('sha256').update(deps.adminKey).digest();
  const now = deps.now ?? Date.now;
  const lastTouched = new Map<string, number>();
  const keys = new EpochCache(deps.epoch, async (hash: string) =>
    deps.db.apiKey.findUnique({ where: { hash }, select: { id: true, tenantId: true, revokedAt: true } }),
  );

  const touch = (keyId: string) => {
    const t = now();
    if ((lastTouched.get(keyId) ?? 0) + LAST_USED_EVERY_MS > t) return;
    lastTouched.set(keyId, t);
    if (lastTouched.size > 50_000) lastTouched.clear();
    // Best effort and off the request path: lastUsedAt is informational, at one-minute resolution.
    deps.db.apiKey.update({ where: { id: keyId }, data: { lastUsedAt: new Date(t) } }).catch(() => undefined);
  };

  return {
    async authenticate(authorization) {
      if (typeof authorization !== 'string' || authorization.trim() === '') {
        throw new AppError('UNAUTHENTICATED', 'missing API key: send the header "Authorization: Bearer <key>"');
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
      if (!m) throw new AppError('UNAUTHENTICATED', 'malformed Authorization header: expected "Bearer <key>"');
      const presented = m[1]!;
      const digest = createHash('sha256').update(presented).digest();
      if (timingSafeEqual(digest, adminDigest)) return { kind: 'admin' };
      const hash = hashApiKey(presented);
      const row = await keys.get(hash);
      if (!row) {
        keys.delete(hash); // guessed keys must not fill the cache
        throw new AppError('UNAUTHENTICATED', 'unknown API key');
      }
      if (row.revokedAt) throw new AppError('UNAUTHENTICATED', 'this API key has been revoked');
      touch(row.id);
      return { kind: 'tenant', tenantId: row.tenantId, keyId: row.id };
    },
  };
}
