import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { formatUsd } from '../accounting/money';
import { AddressRefused, checkAddress, guardedLookup } from './address-guard';
import type { BudgetEventView } from './types';

export interface WebhookOptions {
  /** Development and tests only: let webhooks reach private, loopback and link-local addresses. */
  readonly allowPrivate: boolean;
  /** Extra trusted CA (PEM), e.g. a test's self-signed receiver; added to Node's roots, never replacing them. */
  readonly extraCaPem: string | null;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
}

export interface AttemptResult {
  readonly ok: boolean;
  readonly statusCode: number | null;
  readonly error: string | null;
  /** True when retrying cannot help (the URL's address is refused). */
  readonly permanent: boolean;
  readonly durationMs: number;
}

export const SIGNATURE_HEADER = 'x-gateway-signature';
export const EVENT_ID_HEADER = 'x-gateway-event-id';
export const TIMESTAMP_HEADER = 'x-gateway-timestamp';

/** hex HMAC-SHA256 of the raw body with the tenant's secret, as the signature header carries it ("sha256=<hex>"). */
export const signBody = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;

/**
 * The body of a webhook: the event, plus `sentAt` (this attempt's time, also in the timestamp header) so the
 * signature covers it and a receiver can refuse old replays. Money as decimal dollar strings, like the API's Usd.
 */
export function webhookBody(e: BudgetEventView, sentAt: Date): string {
  return JSON.stringify({
    id: e.id,
    type: e.kind === 'THRESHOLD' ? 'budget.threshold' : 'budget.forecast',
    tenantId: e.tenantId,
    month: e.month,
    thresholdPercent: e.thresholdPercent,
    spentUsd: formatUsd(e.spentMicros),
    budgetUsd: e.budgetMicros === null ? null : formatUsd(e.budgetMicros),
    exhaustsOn: e.exhaustsOn,
    createdAt: e.createdAt.toISOString(),
    sentAt: sentAt.toISOString(),
  });
}

export interface WebhookSender {
  send(url: string, secret: string, e: BudgetEventView): Promise<AttemptResult>;
  close(): Promise<void>;
}

/** Signed POSTs over one undici Agent whose sockets resolve names through the address guard. No redirects. */
export function makeWebhookSender(o: WebhookOptions): WebhookSender {
  const agent = new Agent({
    connect: {
      timeout: o.connectTimeoutMs,
      lookup: guardedLookup(o.allowPrivate),
      ...(o.extraCaPem ? { ca: [...rootCertificates, o.extraCaPem] } : {}),
    },
    headersTimeout: o.responseTimeoutMs,
    bodyTimeout: o.responseTimeoutMs,
  });
  return {
    async send(url, secret, e) {
      const started = performance.now();
      const took = () => Math.round(performance.now() - started);
      try {
        // A literal address never goes through the lookup: it is checked here.
        const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
        if (isIP(host) !== 0) checkAddress(host, host, o.allowPrivate);
        const sentAt = new Date();
        const body = webhookBody(e, sentAt);
        const res = await request(url, {
          method: 'POST',
          dispatcher: agent,
          headers: {
            'content-type': 'application/json',
            'user-agent': 'llm-gateway-alerts/1',
            [EVENT_ID_HEADER]: e.id,
            [TIMESTAMP_HEADER]: String(Math.floor(sentAt.getTime() / 1000)),
            [SIGNATURE_HEADER]: signBody(secret, body),
          },
          body,
          signal: AbortSignal.timeout(o.connectTimeoutMs + o.responseTimeoutMs),
        });
        await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        const error = ok
          ? null
          : res.statusCode >= 300 && res.statusCode < 400
            ? `answered ${res.statusCode}: redirects are not followed`
            : `answered ${res.statusCode}`;
        return { ok, statusCode: res.statusCode, error, permanent: false, durationMs: took() };
      } catch (err) {
        const refused = findRefusal(err);
        const msg = refused?.message ?? describe(err);
        return { ok: false, statusCode: null, error: msg.slice(0, 500), permanent: refused !== null, durationMs: took() };
      }
    },
    close: () => agent.close(),
  };
}

function findRefusal(e: unknown): AddressRefused | null {
  for (let c = e, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) if (c instanceof AddressRefused) return c;
  return null;
}

function describe(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.cause?.code ?? err.code;
  const message = err.cause?.message ?? err.message ?? String(e);
  return code ? `${code}: ${message}` : message;
}
