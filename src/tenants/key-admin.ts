import { AppError, badInput } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { parseUsd } from '../accounting/money';
import { makeAdminCommit } from './admin-commit';
import { checkLimit, type Maybe } from './admin-service';
import { ADMIN_KEY_PREFIX, generateApiKey } from './api-keys';
import { audit } from './audit';
import type { Actor, AdminScope } from './principal';
import { isUuid } from './tenant-store';

/** The longest a rotated key's old secret may stay valid: a week covers any deployment's roll-out. */
export const MAX_GRACE_SECONDS = 7 * 24 * 3600;

export interface RotatedKey {
  readonly id: string;
  /** The new secret, shown once. */
  readonly key: string;
  /** Until when the old secret is still accepted; null when it stopped at once (grace 0). */
  readonly previousKeyExpiresAt: Date | null;
}

export interface AdminKeyView {
  readonly id: string;
  readonly name: string;
  readonly scope: AdminScope;
  readonly prefix: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly rotatedAt: Date | null;
  readonly previousKeyExpiresAt: Date | null;
}

/** Tenant API keys' names, limits and rotation, and the named admin keys. All through the admin commit. */
export interface KeyAdminService {
  /** null clears the name. */
  setApiKeyName(id: string, name: string | null, actor: Actor): Promise<void>;
  /** Left out: unchanged; null: no such limit of its own (the tenant's still applies). */
  setApiKeyLimits(id: string, budget: Maybe<string>, rpm: Maybe<number>, tpm: Maybe<number>, actor: Actor): Promise<void>;
  rotateApiKey(id: string, graceSeconds: number, actor: Actor): Promise<RotatedKey>;
  createAdminKey(name: string, scope: AdminScope, actor: Actor): Promise<{ id: string; key: string; name: string; scope: AdminScope }>;
  revokeAdminKey(id: string, actor: Actor): Promise<boolean>;
  rotateAdminKey(id: string, graceSeconds: number, actor: Actor): Promise<RotatedKey>;
  listAdminKeys(): Promise<AdminKeyView[]>;
}

const NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,99}$/u;
const SCOPES: readonly AdminScope[] = ['REPORTS', 'FULL'];

function checkName(name: string): string {
  const n = typeof name === 'string' ? name.trim() : '';
  if (!NAME.test(n)) throw badInput('name', 'expected 1 to 100 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit');
  return n;
}

function checkGrace(graceSeconds: number): number {
  if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
    throw badInput(
      'graceSeconds',
      `expected a whole number of seconds from 0 (the old key stops at once) to ${MAX_GRACE_SECONDS} (7 days), got ${graceSeconds}`,
    );
  }
  return graceSeconds;
}

/** The columns a rotation writes, the same for both kinds of key: the old secret's hash moves aside for the grace. */
function rotation(oldHash: string, graceSeconds: number, keyPrefix?: string) {
  const k = generateApiKey(keyPrefix);
  const now = new Date();
  const previousExpiresAt = graceSeconds === 0 ? null : new Date(now.getTime() + graceSeconds * 1000);
  return { secret: k.key, data: { hash: k.hash, prefix: k.prefix, previousHash: previousExpiresAt ? oldHash : null, previousExpiresAt, rotatedAt: now } };
}

const notFound = (what: string, id: string) => new AppError('NOT_FOUND', `no ${what} with id "${String(id).slice(0, 64)}"`);

type Commit = ReturnType<typeof makeAdminCommit>;
type Tx = Parameters<Parameters<Commit>[0]>[0];

async function apiKeyOrThrow(tx: Tx, id: string) {
  const k = isUuid(id) ? await tx.apiKey.findUnique({ where: { id } }) : null;
  if (!k) throw notFound('API key', id);
  return k;
}

async function adminKeyOrThrow(tx: Tx, id: string) {
  const k = isUuid(id) ? await tx.adminKey.findUnique({ where: { id } }) : null;
  if (!k) throw notFound('admin key', id);
  return k;
}

function refuseRevoked(what: string, revokedAt: Date | null): void {
  if (revokedAt) throw new AppError('CONFLICT', `this ${what} was revoked at ${revokedAt.toISOString()}; a revoked key cannot be rotated`);
}

export function makeKeyAdminService(deps: { db: Db; epoch: Epoch; logger?: Logger }): KeyAdminService {
  const commit = makeAdminCommit(deps);
  return { ...tenantApiKeyAdmin(commit), ...adminKeyAdmin(commit, deps.db) };
}

/** A tenant's API keys: the name, the key's own limits and rotation. */
function tenantApiKeyAdmin(commit: Commit): Pick<KeyAdminService, 'setApiKeyName' | 'setApiKeyLimits' | 'rotateApiKey'> {
  return {
    async setApiKeyName(id, name, actor) {
      const next = name === null ? null : checkName(name);
      await commit(async (tx) => {
        const k = await apiKeyOrThrow(tx, id);
        await tx.apiKey.update({ where: { id: k.id }, data: { name: next } });
        await audit(tx, actor, {
          action: 'setApiKeyName',
          targetType: 'apiKey',
          targetId: k.id,
          tenantId: k.tenantId,
          oldValue: { name: k.name },
          newValue: { name: next },
        });
      });
    },

    async setApiKeyLimits(id, budget, rpm, tpm, actor) {
      const data: { monthlyBudgetMicros?: bigint | null; requestsPerMinute?: number | null; tokensPerMinute?: number | null } = {};
      if (budget.given) data.monthlyBudgetMicros = budget.value === null ? null : parseUsd(budget.value, 'monthlyBudgetUsd');
      if (rpm.given) data.requestsPerMinute = checkLimit('requestsPerMinute', rpm.value);
      if (tpm.given) data.tokensPerMinute = checkLimit('tokensPerMinute', tpm.value);
      if (Object.keys(data).length === 0)
        throw badInput('monthlyBudgetUsd', 'give at least one of monthlyBudgetUsd, requestsPerMinute or tokensPerMinute (null removes that limit)');
      await commit(async (tx) => {
        const k = await apiKeyOrThrow(tx, id);
        await tx.apiKey.update({ where: { id: k.id }, data });
        const old = { monthlyBudgetMicros: k.monthlyBudgetMicros, requestsPerMinute: k.requestsPerMinute, tokensPerMinute: k.tokensPerMinute };
        await audit(tx, actor, {
          action: 'setApiKeyLimits',
          targetType: 'apiKey',
          targetId: k.id,
          tenantId: k.tenantId,
          oldValue: old,
          newValue: { ...old, ...data },
        });
      });
    },

    async rotateApiKey(id, graceSeconds, actor) {
      const grace = checkGrace(graceSeconds);
      return commit(async (tx) => {
        const k = await apiKeyOrThrow(tx, id);
        refuseRevoked('API key', k.revokedAt);
        const r = rotation(k.hash, grace);
        await tx.apiKey.update({ where: { id: k.id }, data: r.data });
        await audit(tx, actor, {
          action: 'rotateApiKey',
          targetType: 'apiKey',
          targetId: k.id,
          tenantId: k.tenantId,
          oldValue: { prefix: k.prefix },
          newValue: { prefix: r.data.prefix, graceSeconds: grace, previousExpiresAt: r.data.previousExpiresAt },
        });
        return { id: k.id, key: r.secret, previousKeyExpiresAt: r.data.previousExpiresAt };
      });
    },
  };
}

/** The named admin keys (scoped FULL or REPORTS): created, revoked, rotated, listed. */
function adminKeyAdmin(commit: Commit, db: Db): Pick<KeyAdminService, 'createAdminKey' | 'revokeAdminKey' | 'rotateAdminKey' | 'listAdminKeys'> {
  return {
    async createAdminKey(name, scope, actor) {
      const n = checkName(name);
      if (!SCOPES.includes(scope)) throw badInput('scope', `expected one of ${SCOPES.join(', ')}`);
      const k = generateApiKey(ADMIN_KEY_PREFIX);
      try {
        return await commit(async (tx) => {
          const row = await tx.adminKey.create({ data: { name: n, scope, hash: k.hash, prefix: k.prefix } });
          await audit(tx, actor, { action: 'createAdminKey', targetType: 'adminKey', targetId: row.id, newValue: { name: n, scope, prefix: k.prefix } });
          return { id: row.id, key: k.key, name: n, scope };
        });
      } catch (e) {
        if ((e as { code?: string }).code === 'P2002') throw new AppError('CONFLICT', `an admin key named "${n}" already exists`, { field: 'name' });
        throw e;
      }
    },

    async revokeAdminKey(id, actor) {
      return commit(async (tx) => {
        const k = await adminKeyOrThrow(tx, id);
        if (k.revokedAt) return false;
        const revokedAt = new Date();
        await tx.adminKey.update({ where: { id: k.id }, data: { revokedAt } });
        await audit(tx, actor, {
          action: 'revokeAdminKey',
          targetType: 'adminKey',
          targetId: k.id,
          oldValue: { revokedAt: null },
          newValue: { name: k.name, revokedAt },
        });
        return true;
      });
    },

    async rotateAdminKey(id, graceSeconds, actor) {
      const grace = checkGrace(graceSeconds);
      return commit(async (tx) => {
        const k = await adminKeyOrThrow(tx, id);
        refuseRevoked('admin key', k.revokedAt);
        const r = rotation(k.hash, grace, ADMIN_KEY_PREFIX);
        await tx.adminKey.update({ where: { id: k.id }, data: r.data });
        await audit(tx, actor, {
          action: 'rotateAdminKey',
          targetType: 'adminKey',
          targetId: k.id,
          oldValue: { prefix: k.prefix },
          newValue: { name: k.name, prefix: r.data.prefix, graceSeconds: grace, previousExpiresAt: r.data.previousExpiresAt },
        });
        return { id: k.id, key: r.secret, previousKeyExpiresAt: r.data.previousExpiresAt };
      });
    },

    async listAdminKeys() {
      const rows = await db.adminKey.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
      return rows.map((k) => ({
        id: k.id,
        name: k.name,
        scope: k.scope,
        prefix: k.prefix,
        createdAt: k.createdAt,
        lastUsedAt: k.lastUsedAt,
        revokedAt: k.revokedAt,
        rotatedAt: k.rotatedAt,
        previousKeyExpiresAt: k.previousExpiresAt,
      }));
    },
  };
}
