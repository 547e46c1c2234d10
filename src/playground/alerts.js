// The admin view's budget alerts: the selected tenant's thresholds and webhook, its alerts and webhook attempts.
import { gql } from './api.js';
import { usd } from './charts.js';

const $ = (id) => document.getElementById(id);
const SETTINGS = `query AlertSettings($id: ID!) { tenant(id: $id) { id alertThresholds alertWebhookUrl } }`;
const SET = `mutation SetAlerts($id: ID!, $thresholds: [Int!], $url: String) {
  setTenantAlerts(tenantId: $id, thresholds: $thresholds, webhookUrl: $url) { webhookSecret tenant { id alertThresholds alertWebhookUrl } } }`;
const ROTATE = `mutation Rotate($id: ID!) { rotateAlertWebhookSecret(tenantId: $id) { webhookSecret } }`;
const LOG = `query AlertLog($id: ID!) {
  budgetAlertsConnection(tenantId: $id, first: 20) { edges { node { id webhookStatus attempts event { kind month thresholdPercent spentUsd exhaustsOn createdAt } } } }
  alertDeliveriesConnection(tenantId: $id, first: 20) { edges { node { id attempt statusCode ok error createdAt } } } }`;

const cell = (text) => Object.assign(document.createElement('td'), { textContent: String(text) });
const what = (e) => (e.kind === 'THRESHOLD' ? `${e.thresholdPercent}% of the budget` : `runs out on ${e.exhaustsOn}`);

function showSecret(secret) {
  $('alert-secret').hidden = secret === null;
  $('alert-secret-value').textContent = secret ?? '';
}

/** Fills the alert settings and both logs of tenant `id`. */
export async function loadAlerts(adminKey, id) {
  if (!id) return;
  const [{ tenant }, log] = await Promise.all([gql(adminKey, SETTINGS, { id }), gql(adminKey, LOG, { id })]);
  $('alert-thresholds').value = tenant.alertThresholds.join(', ');
  $('alert-url').value = tenant.alertWebhookUrl ?? '';
  $('alerts').tBodies[0].replaceChildren(
    ...log.budgetAlertsConnection.edges.map(({ node: a }) => {
      const tr = document.createElement('tr');
      tr.append(
        cell(new Date(a.event.createdAt).toLocaleString()),
        cell(what(a.event)),
        cell(usd(a.event.spentUsd)),
        cell(`${a.webhookStatus} (${a.attempts})`),
      );
      return tr;
    }),
  );
  $('deliveries').tBodies[0].replaceChildren(
    ...log.alertDeliveriesConnection.edges.map(({ node: d }) => {
      const tr = document.createElement('tr');
      tr.append(cell(new Date(d.createdAt).toLocaleString()), cell(d.attempt), cell(d.ok ? 'ok' : (d.error ?? 'failed')), cell(d.statusCode ?? '-'));
      return tr;
    }),
  );
}

/** Saves thresholds ("50, 80, 100"; empty: none) and the webhook URL (empty: none); shows a new secret once. */
export async function saveAlerts(adminKey, id) {
  const text = $('alert-thresholds').value.trim();
  const thresholds = text === '' ? [] : text.split(/[\s,]+/).map(Number);
  const url = $('alert-url').value.trim() || null;
  const { setTenantAlerts: r } = await gql(adminKey, SET, { id, thresholds, url });
  showSecret(r.webhookSecret);
  await loadAlerts(adminKey, id);
  return r;
}

export async function rotateSecret(adminKey, id) {
  const { rotateAlertWebhookSecret: r } = await gql(adminKey, ROTATE, { id });
  showSecret(r.webhookSecret);
}
