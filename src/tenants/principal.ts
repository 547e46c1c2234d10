import { AppError } from '../errors';
import type { Micros } from '../accounting/money';

/** An API key's own limits (null = none), checked with its tenant's in the same admission. */
export interface KeyLimits {
  readonly budgetMicros: Micros | null;
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
}

/** REPORTS reads everything the admin reads and changes nothing; FULL is the admin. */
export type AdminScope = 'REPORTS' | 'FULL';

/** Who made an admin change, as the audit log names it: the root key ("admin", no key id) or a named admin key. */
export interface Actor {
  readonly name: string;
  readonly keyId: string | null;
}

export const ROOT_ACTOR: Actor = { name: 'admin', keyId: null };

/** Who is calling. The admin is not a tenant. */
export type Principal =
  | { readonly kind: 'tenant'; readonly tenantId: string; readonly keyId: string; readonly keyLimits: KeyLimits }
  /** actor: the root key (ROOT_ACTOR) or a named admin key. */
  | { readonly kind: 'admin'; readonly scope: AdminScope; readonly actor: Actor };

export function requireTenant(p: Principal, what: string): Extract<Principal, { kind: 'tenant' }> {
  if (p.kind !== 'tenant') throw new AppError('FORBIDDEN', `${what} needs a tenant key: the admin key is not a tenant`);
  return p;
}

/** Reads: the root key or any admin key (reports-only included). */
export function requireAdminRead(p: Principal, what: string): Actor {
  if (p.kind !== 'admin') throw new AppError('FORBIDDEN', `${what} needs the admin key`);
  return p.actor;
}

/**
 * Changes (and anything not known to be a read): the root key or a FULL admin key; a reports-only key is
 * FORBIDDEN. Returns who acts, for the audit log. The stricter check carries the plain name so it is the default.
 */
export function requireAdmin(p: Principal, what: string): Actor {
  const actor = requireAdminRead(p, what);
  if (p.kind === 'admin' && p.scope !== 'FULL') {
    throw new AppError('FORBIDDEN', `${what} changes the gateway: the admin key "${actor.name}" is reports-only`, { scope: p.scope });
  }
  return actor;
}

/** Admin keys themselves are managed by the root ADMIN_API_KEY only: no admin key can mint or revoke another. */
export function requireRootAdmin(p: Principal, what: string): Actor {
  const actor = requireAdminRead(p, what);
  if (actor.keyId !== null) throw new AppError('FORBIDDEN', `${what} needs the root admin key (ADMIN_API_KEY); admin keys cannot manage admin keys`);
  return actor;
}

/**
 * The tenant a read is about: a tenant key may name only itself (or nothing); the admin must name one.
 * Another tenant's id is FORBIDDEN, never a silent switch to the caller's own.
 */
export function scopeTenant(p: Principal, tenantId: string | null | undefined, what: string): string {
  if (p.kind === 'admin') {
    if (!tenantId) throw new AppError('BAD_USER_INPUT', `tenantId: the admin must name the tenant for ${what}`, { field: 'tenantId' });
    return tenantId;
  }
  if (tenantId && tenantId !== p.tenantId) throw new AppError('FORBIDDEN', `a tenant key may read only its own tenant's ${what}`);
  return p.tenantId;
}
