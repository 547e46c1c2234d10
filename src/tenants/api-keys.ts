import { createHash, randomBytes } from 'node:crypto';

/** Tenant keys: 192 random bits, shown once; stored as SHA-256 hex with a display prefix. */
export const KEY_PREFIX = 'lgw_';
const DISPLAY_CHARS = 12;

export interface NewApiKey {
  readonly key: string;
  readonly hash: string;
  readonly prefix: string;
}

export function generateApiKey(): NewApiKey {
  const key = `${KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_CHARS) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
