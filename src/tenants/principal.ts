import { AppError } from '../errors';

/** Who is calling. The admin is not a tenant. */
export type Principal =
  | { readonly kind: 'tenant'; readonly tenantId: string; readonly keyId: string }
  | { readonly kind: 'admin' };

export function requireTenant(p: Principal, what: string): Extract<Principal, { kind: 'tenant' }> {
  if (p.kind !== 'tenant') throw new AppError('FORBIDDEN', `${what} needs a tenant key: the admin key is not a tenant`);
  return p;
}

export function requireAdmin(p: Principal, what: string): void {
  if (p.kind !== 'admin') throw new AppError('FORBIDDEN', `${what} needs the admin key`);
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
