import type { HeldEntry } from './ledger';

/**
 * Checks a row before it joins a group-commit batch, so a value Postgres would refuse fails its own request here
 * instead of sending a statement (the batch's fallback still isolates anything these miss, e.g. a tenant deleted
 * meanwhile). The values come from the gateway itself: a failure is a bug, reported as a RangeError naming the field.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INT4_MAX = 2_147_483_647;
const BIGINT_MAX = 2n ** 63n - 1n;
const REGIONS: ReadonlySet<string> = new Set(['US_EAST', 'ASIA']);

export function uuidArg(field: string, v: string): string {
  if (!UUID.test(v)) throw new RangeError(`ledger: ${field} must be a UUID, got ${JSON.stringify(v)}`);
  return v;
}

function int4(field: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > INT4_MAX) throw new RangeError(`ledger: ${field} must be an integer in 0..${INT4_MAX}, got ${v}`);
}

function text(field: string, v: string | null): void {
  if (v !== null && v.includes('\u0000')) throw new RangeError(`ledger: ${field} must not contain NUL characters`);
}

export function checkHeldEntry(e: HeldEntry): HeldEntry {
  uuidArg('requestId', e.requestId);
  uuidArg('tenantId', e.tenantId);
  if (e.apiKeyId !== null) uuidArg('apiKeyId', e.apiKeyId);
  if (!REGIONS.has(e.region)) throw new RangeError(`ledger: unknown region ${JSON.stringify(e.region)}`);
  int4('maxTokens', e.maxTokens);
  int4('promptTokensEstimate', e.promptTokensEstimate);
  int4('leaseMs', e.leaseMs);
  if (e.holdMicros < 0n || e.holdMicros > BIGINT_MAX) throw new RangeError(`ledger: holdMicros out of range: ${e.holdMicros}`);
  if (Number.isNaN(e.startedAt.getTime())) throw new RangeError('ledger: startedAt is not a valid date');
  text('profile', e.profile);
  text('plannedModel', e.plannedModel);
  text('idempotencyKey', e.idempotencyKey);
  return e;
}
