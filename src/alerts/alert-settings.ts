import { randomBytes } from 'node:crypto';
import { AppError, badInput } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { makeAdminCommit, type AdminTx } from '../tenants/admin-commit';
import type { Maybe } from '../tenants/admin-service';
import { audit } from '../tenants/audit';
import { isUuid } from '../tenants/tenant-store';
import { checkThresholds, checkWebhookUrl, DEFAULT_THRESHOLDS } from './alert-input';

export interface AlertSettings {
  readonly thresholds: readonly number[];
  readonly webhookUrl: string | null;
}

export interface AlertSettingsService {
  get(tenantId: string): Promise<AlertSettings>;
  /**
   * Admin: thresholds (null: the default 50, 80, 100; [] : none) and/or the webhook URL (null removes it). Setting a
   * URL for a tenant without a signing secret makes one and returns it, this once. Validates before writing.
   */
  set(tenantId: string, thresholds: Maybe<readonly number[]>, webhookUrl: Maybe<string>): Promise<{ webhookSecret: string | null }>;
  /** Admin: a new signing secret, returned this once; the old one stops signing at once. */
  rotateSecret(tenantId: string): Promise<{ webhookSecret: string }>;
}

/** 256 random bits; the prefix says what it is when it turns up in a tenant's config. */
const newSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

export function makeAlertSettings(deps: { db: Db; epoch: Epoch; logger?: Logger; allowPrivate: boolean }): AlertSettingsService {
  const commit = makeAdminCommit(deps);

  async function tenantOrThrow(tx: AdminTx, tenantId: string) {
    const t = isUuid(tenantId)
      ? await tx.tenant.findUnique({ where: { id: tenantId }, select: { id: true, alertThresholds: true, alertWebhookUrl: true, alertWebhookSecret: true } })
      : null;
    if (!t) throw new AppError('NOT_FOUND', `no tenant with id "${tenantId.slice(0, 64)}"`);
    return t;
  }

  return {
    async get(tenantId) {
      const t = await deps.db.tenant.findUnique({ where: { id: tenantId }, select: { alertThresholds: true, alertWebhookUrl: true } });
      return { thresholds: t?.alertThresholds ?? [...DEFAULT_THRESHOLDS], webhookUrl: t?.alertWebhookUrl ?? null };
    },

    async set(tenantId, thresholds, webhookUrl) {
      if (!thresholds.given && !webhookUrl.given) throw badInput('thresholds', 'give thresholds, webhookUrl or both');
      const nextThresholds = thresholds.given ? (thresholds.value === null ? [...DEFAULT_THRESHOLDS] : checkThresholds(thresholds.value)) : undefined;
      const nextUrl = webhookUrl.given ? (webhookUrl.value === null ? null : checkWebhookUrl(webhookUrl.value, deps.allowPrivate)) : undefined;
      return commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        const secret = nextUrl && !t.alertWebhookSecret ? newSecret() : null;
        await tx.tenant.update({
          where: { id: t.id },
          data: { alertThresholds: nextThresholds, alertWebhookUrl: nextUrl, ...(secret ? { alertWebhookSecret: secret } : {}) },
        });
        await audit(tx, 'admin', {
          action: 'setTenantAlerts',
          targetType: 'tenant',
          targetId: t.id,
          tenantId: t.id,
          oldValue: { alertThresholds: t.alertThresholds, alertWebhookUrl: t.alertWebhookUrl },
          // Never the secret itself: the audit log is readable long after.
          newValue: {
            alertThresholds: nextThresholds ?? t.alertThresholds,
            alertWebhookUrl: nextUrl === undefined ? t.alertWebhookUrl : nextUrl,
            webhookSecretCreated: secret !== null,
          },
        });
        return { webhookSecret: secret };
      });
    },

    async rotateSecret(tenantId) {
      return commit(async (tx) => {
        const t = await tenantOrThrow(tx, tenantId);
        const secret = newSecret();
        await tx.tenant.update({ where: { id: t.id }, data: { alertWebhookSecret: secret } });
        await audit(tx, 'admin', { action: 'rotateAlertWebhookSecret', targetType: 'tenant', targetId: t.id, tenantId: t.id, newValue: { rotated: true } });
        return { webhookSecret: secret };
      });
    },
  };
}
