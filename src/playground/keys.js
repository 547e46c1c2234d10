// The admin view's API keys of one tenant: names, own limits, this month's spend, rotation and revocation.
import { gql } from './api.js';
import { usd } from './charts.js';

const KEY_FIELDS = `id name prefix createdAt lastUsedAt revokedAt rotatedAt previousKeyExpiresAt monthlyBudgetUsd requestsPerMinute tokensPerMinute spentThisMonthUsd`;
const API_KEYS = `query Keys($t: ID) { apiKeys(tenantId: $t) { ${KEY_FIELDS} } }`;
const REVOKE = `mutation Revoke($id: ID!) { revokeApiKey(id: $id) }`;
const SET_NAME = `mutation KeyName($id: ID!, $name: String) { setApiKeyName(id: $id, name: $name) { id } }`;
const SET_KEY_LIMITS = `mutation KeyLimits($id: ID!, $b: Usd, $r: Int, $t: Int) {
  setApiKeyLimits(id: $id, monthlyBudgetUsd: $b, requestsPerMinute: $r, tokensPerMinute: $t) { id }
}`;
const ROTATE = `mutation Rotate($id: ID!, $g: Int!) { rotateApiKey(id: $id, graceSeconds: $g) { id key previousKeyExpiresAt } }`;

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '-');
const num = (v) => (v.trim() === '' ? null : Number(v));

/**
 * ui: { adminKey(), tenant() (the selected {id, name}), grace() (seconds), status(text), error(e or null),
 * newKey(tenantName, {key}) } — the page's own pieces, so this module owns only the table.
 */
export function makeKeysView(table, ui) {
  const run = async (work) => {
    ui.error(null);
    try {
      await work();
    } catch (e) {
      ui.error(e);
    }
  };

  const input = (value, label, attrs = {}) => Object.assign(document.createElement('input'), { value: value ?? '', ...attrs, ariaLabel: label });
  const button = (text, label, onClick, secondary = true) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', className: secondary ? 'secondary' : '', textContent: text });
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => void run(onClick));
    return b;
  };
  const cell = (...content) => {
    const td = document.createElement('td');
    td.append(...content);
    return td;
  };

  function status(k) {
    if (k.revokedAt) return `revoked ${when(k.revokedAt)}`;
    if (k.previousKeyExpiresAt && Date.parse(k.previousKeyExpiresAt) > Date.now()) return `rotated; old secret valid until ${when(k.previousKeyExpiresAt)}`;
    return k.rotatedAt ? `active (rotated ${when(k.rotatedAt)})` : 'active';
  }

  function row(k) {
    const tr = document.createElement('tr');
    tr.dataset.key = k.id;
    const name = input(k.name, `Name of key ${k.prefix}`, { maxLength: 100, size: 12 });
    const budget = input(k.monthlyBudgetUsd, `Own monthly budget of key ${k.prefix} (USD)`, { inputMode: 'decimal', size: 8 });
    const rpm = input(k.requestsPerMinute, `Own requests per minute of key ${k.prefix}`, { type: 'number', min: 1, size: 6 });
    const tpm = input(k.tokensPerMinute, `Own tokens per minute of key ${k.prefix}`, { type: 'number', min: 1, size: 8 });
    const actions = cell();
    if (!k.revokedAt) {
      actions.append(
        button(
          'Save',
          `Save name and limits of key ${k.prefix}`,
          async () => {
            await gql(ui.adminKey(), SET_NAME, { id: k.id, name: name.value.trim() || null });
            await gql(ui.adminKey(), SET_KEY_LIMITS, { id: k.id, b: budget.value.trim() || null, r: num(rpm.value), t: num(tpm.value) });
            ui.status(`Saved key ${k.prefix}; its limits apply from the next request on every instance.`);
            await load();
          },
          false,
        ),
        button('Rotate', `Rotate key ${k.prefix}`, async () => {
          const { rotateApiKey: r } = await gql(ui.adminKey(), ROTATE, { id: k.id, g: ui.grace() });
          ui.newKey(ui.tenant().name, r);
          ui.status(
            r.previousKeyExpiresAt
              ? `Rotated ${k.prefix}; the old secret works until ${when(r.previousKeyExpiresAt)}.`
              : `Rotated ${k.prefix}; the old secret stopped now.`,
          );
          await load();
        }),
        button('Revoke', `Revoke key ${k.prefix}`, async () => {
          await gql(ui.adminKey(), REVOKE, { id: k.id });
          ui.status(`Revoked key ${k.prefix}; it is refused from its next request.`);
          await load();
        }),
      );
    }
    tr.append(
      cell(name),
      cell(k.prefix),
      cell(usd(k.spentThisMonthUsd)),
      cell(budget),
      cell(rpm),
      cell(tpm),
      cell(when(k.lastUsedAt)),
      cell(status(k)),
      actions,
    );
    return tr;
  }

  async function load() {
    const t = ui.tenant();
    if (!t) return;
    await run(async () => {
      const { apiKeys } = await gql(ui.adminKey(), API_KEYS, { t: t.id });
      table.tBodies[0].replaceChildren(...apiKeys.map(row));
    });
  }

  return { load };
}
