import { isIP } from 'node:net';
import { badInput } from '../errors';
import { classifyAddress } from './address-guard';

export const MAX_THRESHOLDS = 10;
export const MAX_THRESHOLD_PERCENT = 1000;
export const DEFAULT_THRESHOLDS: readonly number[] = [50, 80, 100];

/** Percents of the monthly budget: whole numbers 1..1000 (past 100 warns of overspend), at most 10, no repeats. */
export function checkThresholds(v: readonly number[]): number[] {
  if (v.length > MAX_THRESHOLDS) throw badInput('thresholds', `at most ${MAX_THRESHOLDS} thresholds, got ${v.length}`);
  for (const t of v) {
    if (!Number.isInteger(t) || t < 1 || t > MAX_THRESHOLD_PERCENT) {
      throw badInput('thresholds', `each threshold is a whole percent of the monthly budget from 1 to ${MAX_THRESHOLD_PERCENT}, got ${t}`);
    }
  }
  const sorted = [...v].sort((a, b) => a - b);
  const dup = sorted.find((t, i) => i > 0 && sorted[i - 1] === t);
  if (dup !== undefined) throw badInput('thresholds', `${dup} appears more than once`);
  return sorted;
}

const MAX_URL = 2000;

/**
 * The webhook URL: https only (the body carries spend figures and a signature), no credentials in it, at most 2000
 * characters. An IP-literal host is classified here for a clear message; names are checked after resolution, at each
 * delivery (see address-guard.ts).
 */
export function checkWebhookUrl(v: string, allowPrivate: boolean): string {
  const s = v.trim();
  if (s.length > MAX_URL) throw badInput('webhookUrl', `at most ${MAX_URL} characters`);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw badInput('webhookUrl', 'not a URL: expected https://host/path');
  }
  if (u.protocol !== 'https:') throw badInput('webhookUrl', `must start with https:// (got ${u.protocol}//): alerts carry a signature and spend figures`);
  if (u.username || u.password) throw badInput('webhookUrl', 'must not carry a user name or password: the signature authenticates the gateway');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) {
    const kind = classifyAddress(host);
    if (kind !== 'public' && !allowPrivate) throw badInput('webhookUrl', `${host} is a ${kind} address: webhooks go to public addresses only`);
  }
  return u.toString();
}
