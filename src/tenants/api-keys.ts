import { createHash, randomBytes } from 'node:crypto';

/** Keys: 192 random bits, shown once; stored as SHA-256 hex with a display prefix. Tenant keys start lgw_. */
export const KEY_PREFIX = 'lgw_';
/** Named admin keys start lga_, so a leaked one is recognisable as an admin secret. */
export const ADMIN_KEY_PREFIX = 'lga_';
const DISPLAY_CHARS = 12;

export interface NewApiKey {
  readonly key: string;
  readonly hash: string;
  readonly prefix: string;
}

export function generateApiKey(prefix = KEY_PREFIX): NewApiKey {
  const key = `${prefix}${randomBytes(24).toString('base64url')}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_CHARS) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
