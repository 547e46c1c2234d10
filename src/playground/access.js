// The admin view's controls of what a tenant may do: suspension, its model access list, and the global switch of
// each model. Kept apart from app.js, which hands over how to reach the gateway and the selected tenant.

const $ = (id) => document.getElementById(id);
const MODELS = `query Models { models { id name provider enabled } }`;
const ACCESS = `id name suspendedAt suspensionReason modelAccess { mode models }`;
const SUSPEND = `mutation Suspend($id: ID!, $reason: String) { suspendTenant(tenantId: $id, reason: $reason) { ${ACCESS} } }`;
const RESUME = `mutation Resume($id: ID!) { resumeTenant(tenantId: $id) { ${ACCESS} } }`;
const SET_ACCESS = `mutation SetAccess($id: ID!, $mode: ModelAccessMode!, $models: [ID!]) { setTenantModelAccess(tenantId: $id, mode: $mode, models: $models) { ${ACCESS} } }`;
const ENABLE = `mutation Enable($model: ID!, $enabled: Boolean!) { setModelEnabled(model: $model, enabled: $enabled) { id enabled } }`;

/** The fields of a tenant this module shows; app.js adds them to its tenants query. */
export const ACCESS_FIELDS = 'suspendedAt suspensionReason modelAccess { mode models }';

/**
 * Wires the controls. `ui`: gql(query, variables) with the admin key, selected() the selected tenant (or
 * undefined), reload() after a change (reloads the tenants), done(text) and fail(error) for the status line.
 */
export function mountAccessControls(ui) {
  let models = [];

  const act = async (work) => {
    try {
      await work();
    } catch (e) {
      ui.fail(e);
    }
  };

  /** The selected tenant's suspension and list, into the forms. */
  function show(t) {
    if (!t) return;
    $('suspension-state').textContent = t.suspendedAt
      ? `Suspended since ${new Date(t.suspendedAt).toLocaleString()}${t.suspensionReason ? `: ${t.suspensionReason}` : ''}.`
      : 'Active.';
    $('suspend').disabled = Boolean(t.suspendedAt);
    $('resume').disabled = !t.suspendedAt;
    $('access-mode').value = t.modelAccess.mode;
    for (const box of $('access-models').querySelectorAll('input')) box.checked = t.modelAccess.models.includes(box.value);
    $('access-models').disabled = t.modelAccess.mode === 'ALL';
  }

  /** Every model: a checkbox for the tenant's list and a row with the global switch. */
  async function loadModels() {
    ({ models } = await ui.gql(MODELS));
    $('access-models').replaceChildren(
      Object.assign(document.createElement('legend'), { textContent: 'Models of the list' }),
      ...models.map((m) => {
        const label = document.createElement('label');
        label.append(Object.assign(document.createElement('input'), { type: 'checkbox', value: m.id }), ` ${m.id}`);
        return label;
      }),
    );
    const cell = (text) => Object.assign(document.createElement('td'), { textContent: text });
    $('models-admin').tBodies[0].replaceChildren(
      ...models.map((m) => {
        const tr = document.createElement('tr');
        tr.dataset.model = m.id;
        const toggle = Object.assign(document.createElement('button'), {
          type: 'button',
          className: 'secondary',
          textContent: m.enabled ? 'Disable' : 'Enable',
        });
        toggle.setAttribute('aria-label', `${m.enabled ? 'Disable' : 'Enable'} ${m.id} for every tenant`);
        toggle.addEventListener('click', () => void act(() => setEnabled(m, !m.enabled)));
        const action = document.createElement('td');
        action.append(toggle);
        tr.append(
          Object.assign(document.createElement('th'), { scope: 'row', textContent: m.id }),
          cell(m.provider),
          cell(m.enabled ? 'enabled' : 'disabled'),
          action,
        );
        return tr;
      }),
    );
    show(ui.selected());
  }

  async function setEnabled(m, enabled) {
    await ui.gql(ENABLE, { model: m.id, enabled });
    await loadModels();
    ui.done(`${m.id} is now ${enabled ? 'enabled' : 'disabled'} for every tenant.`);
  }

  async function change(mutation, variables, text) {
    const t = ui.selected();
    if (!t) return;
    await ui.gql(mutation, { id: t.id, ...variables });
    await ui.reload();
    ui.done(text(t));
  }

  $('suspend-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const reason = $('suspend-reason').value.trim() || null;
    void act(async () => {
      await change(SUSPEND, { reason }, (t) => `Suspended “${t.name}”: its keys are refused from their next request, its running requests end.`);
      $('suspend-reason').value = '';
    });
  });
  $('resume').addEventListener('click', () => void act(() => change(RESUME, {}, (t) => `Resumed “${t.name}”.`)));
  $('access-mode').addEventListener('change', () => {
    $('access-models').disabled = $('access-mode').value === 'ALL';
  });
  $('model-access-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mode = $('access-mode').value;
    const picked = [...$('access-models').querySelectorAll('input:checked')].map((b) => b.value);
    void act(() =>
      change(
        SET_ACCESS,
        { mode, models: mode === 'ALL' ? null : picked },
        (t) => `Model access of “${t.name}”: ${mode === 'ALL' ? 'every enabled model' : `${mode === 'ALLOW' ? 'only' : 'all but'} ${picked.join(', ')}`}.`,
      ),
    );
  });

  return { show, load: () => act(loadModels) };
}
