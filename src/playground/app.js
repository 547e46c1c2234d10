// The playground page: a tenant key, a streamed chat with its stats, the month's spend, and an admin view.
import { gql, subscribe, describeError, onTransport } from './api.js';
import { drawGauge, drawBars, usd } from './charts.js';
import { makeKeysView } from './keys.js';
import { loadAlerts, saveAlerts, rotateSecret } from './alerts.js';
import { ACCESS_FIELDS, mountAccessControls } from './access.js';

const $ = (id) => document.getElementById(id);
const KEY = 'gateway.key';
const ADMIN_KEY = 'gateway.adminKey';
/** The current calendar month in UTC, as costReport wants it. */
const month = () => new Date().toISOString().slice(0, 7);

const PROFILES = `query Profiles($region: Region) { profiles(region: $region) { name model fallbacks defaultMaxTokens maxTokensCap } }`;
const ME = `query Me { me { id name } }`;
const TENANT = `id name monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd requestsPerMinute tokensPerMinute`;
const ROWS = `totalUsd rows { key requests completionTokens costUsd }`;
const SPEND = `query Spend($month: String!) {
  me { ${TENANT} }
  byModel: costReport(month: $month, groupBy: MODEL) { ${ROWS} }
  byDay: costReport(month: $month, groupBy: DAY) { ${ROWS} }
}`;
const STREAM = `subscription Chat($input: ChatInput!) {
  chatStream(input: $input) {
    requestId model delta done outcome finishReason ttftMs toolCallDeltas { index id name argumentsDelta }
    usage { promptTokens completionTokens cachedPromptTokens cacheWriteTokens costUsd source } attempts { model ok error latencyMs }
  }
}`;
const REQUEST = `query Request($id: ID!) { request(id: $id) { outcome model usage { promptTokens completionTokens costUsd source } } }`;
const TENANTS = `query Tenants { tenants(first: 200) { ${TENANT} ${ACCESS_FIELDS} } }`;
const SET_BUDGET = `mutation SetBudget($id: ID!, $budget: Usd) { setTenantBudget(tenantId: $id, monthlyBudgetUsd: $budget) { ${TENANT} } }`;
const CREATE_TENANT = `mutation CreateTenant($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id name } apiKey { id key } } }`;
const CREATE_KEY = `mutation CreateKey($t: ID!) { createApiKey(tenantId: $t) { id key } }`;
const SET_LIMITS = `mutation SetLimits($id: ID!, $rpm: Int, $tpm: Int) { setTenantLimits(tenantId: $id, requestsPerMinute: $rpm, tokensPerMinute: $tpm) { ${TENANT} } }`;

let key = sessionStorage.getItem(KEY) ?? '';
let adminKey = sessionStorage.getItem(ADMIN_KEY) ?? '';
let profiles = [];
/** The running stream: { stop, requestId, firstAt, ended }. */
let run = null;

const showError = (el, e) => {
  el.textContent = e ? `Error: ${describeError(e)} [${e.code}]` : '';
};
const setStat = (name, text) => {
  $(`stat-${name}`).textContent = text;
};

// ---- key ----------------------------------------------------------------------------------------------------

async function useKey(k) {
  key = k.trim();
  sessionStorage.setItem(KEY, key);
  $('key-status').textContent = 'Checking the key...';
  try {
    const { me } = await gql(key, ME);
    $('key-status').textContent = `Using the key of tenant “${me.name}”.`;
    await Promise.all([loadProfiles(), refreshSpend()]);
  } catch (e) {
    $('key-status').textContent = describeError(e);
  }
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void useKey($('key').value);
});
$('forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  key = '';
  $('key').value = '';
  $('key-status').textContent = 'Key forgotten.';
});

// ---- profiles -----------------------------------------------------------------------------------------------

async function loadProfiles() {
  const before = $('profile').value;
  ({ profiles } = await gql(key, PROFILES, { region: $('region').value }));
  $('profile').replaceChildren(...profiles.map((p) => new Option(p.name, p.name, false, p.name === before)));
  describeProfile();
}

function describeProfile() {
  const p = profiles.find((x) => x.name === $('profile').value);
  if (!p) return;
  const chain = p.fallbacks.length ? `, falls back to ${p.fallbacks.join(', ')}` : ', no fallback';
  $('profile-info').textContent = `Model ${p.model}${chain}. Max tokens ${p.defaultMaxTokens} by default, at most ${p.maxTokensCap}.`;
  $('max-tokens').max = String(p.maxTokensCap);
  $('max-tokens').placeholder = String(p.defaultMaxTokens);
}

$('profile').addEventListener('change', describeProfile);
$('region').addEventListener('change', () => key && loadProfiles().catch((e) => showError($('chat-error'), e)));

// ---- chat ---------------------------------------------------------------------------------------------------

function resetChat() {
  $('output').textContent = '';
  $('tool-calls').replaceChildren();
  $('tool-calls-box').hidden = true;
  showError($('chat-error'), null);
  for (const s of ['model', 'attempts', 'ttft', 'tps', 'tokens', 'cost', 'request']) setStat(s, '-');
}

/** Send and Stop swap places; keyboard focus follows so it is never lost on a disabled button. */
function setRunning(running) {
  const focused = document.activeElement;
  $('send').disabled = running;
  $('stop').disabled = !running;
  $('output').setAttribute('aria-busy', String(running));
  if (running && focused === $('send')) $('stop').focus();
  if (!running && focused === $('stop')) $('send').focus();
}

function startChat() {
  if (run) return;
  if (!key) return showError($('chat-error'), { code: 'UNAUTHENTICATED', message: 'Paste a tenant key first.' });
  resetChat();
  setStat('state', 'Connecting...');
  setRunning(true);
  const maxTokens = $('max-tokens').value;
  let tools;
  try {
    tools = readTools($('tools').value);
  } catch (e) {
    setRunning(false);
    setStat('state', 'Idle');
    return showError($('chat-error'), { code: 'BAD_USER_INPUT', message: `Tools: ${e.message}` });
  }
  const input = {
    profile: $('profile').value,
    region: $('region').value,
    messages: [{ role: 'USER', content: $('prompt').value }],
    ...(maxTokens ? { maxTokens: Number(maxTokens) } : {}),
    ...(tools.length ? { tools } : {}),
  };
  const startedAt = performance.now();
  const r = { requestId: null, firstAt: null, ended: false, startedAt, stop: null, calls: new Map() };
  run = r;
  r.stop = subscribe(
    key,
    STREAM,
    { input },
    (data) => onEvent(r, data.chatStream),
    (err) => onEnd(r, err),
  );
}

function onEvent(r, ev) {
  if (!r.requestId) {
    r.requestId = ev.requestId;
    setStat('request', ev.requestId);
    setStat('state', 'Streaming...');
  }
  setStat('model', ev.model);
  if (ev.delta) {
    r.firstAt ??= performance.now();
    const out = $('output');
    out.append(ev.delta);
    out.scrollTop = out.scrollHeight;
  }
  if (ev.toolCallDeltas) {
    r.firstAt ??= performance.now();
    showToolCalls(r, ev.toolCallDeltas);
  }
  if (ev.done) showDone(r, ev);
}

/** The tools textarea as ChatInput.tools: a JSON array; each parameters object goes as JSON text. */
function readTools(text) {
  if (!text.trim()) return [];
  const list = JSON.parse(text);
  if (!Array.isArray(list)) throw new Error('expected a JSON array of tools');
  return list.map((t) => ({
    name: String(t.name ?? ''),
    ...(t.description ? { description: String(t.description) } : {}),
    ...(t.parameters === undefined ? {} : { parameters: typeof t.parameters === 'string' ? t.parameters : JSON.stringify(t.parameters) }),
  }));
}

/** Pieces join their call by index, as the upstream streams them; each call shows its name and arguments so far. */
function showToolCalls(r, deltas) {
  for (const d of deltas) {
    let call = r.calls.get(d.index);
    if (!call) {
      const li = document.createElement('li');
      const name = document.createElement('strong');
      const id = document.createElement('span');
      id.className = 'hint';
      const args = document.createElement('code');
      args.className = 'args';
      li.append(name, ' ', id, args);
      call = { li, name, id, args };
      r.calls.set(d.index, call);
      const list = $('tool-calls');
      list.append(...[...r.calls.keys()].sort((a, b) => a - b).map((k) => r.calls.get(k).li));
    }
    if (d.name) call.name.textContent = d.name;
    if (d.id) call.id.textContent = `(${d.id})`;
    if (d.argumentsDelta) call.args.append(d.argumentsDelta);
  }
  $('tool-calls-box').hidden = false;
}

function showDone(r, ev) {
  r.ended = true;
  const now = performance.now();
  const why = ev.finishReason === 'TOOL_CALLS' ? ' (tool calls)' : '';
  setStat('state', ev.outcome === 'COMPLETED' ? `Completed${why}` : `Ended: ${ev.outcome}`);
  showAttempts(ev.attempts ?? []);
  setStat('ttft', ev.ttftMs === null ? '-' : `${ev.ttftMs} ms`);
  if (ev.usage) {
    showUsage(ev.usage);
    const secs = r.firstAt === null ? 0 : (now - r.firstAt) / 1000;
    setStat('tps', secs > 0 && ev.usage.completionTokens > 1 ? `${(ev.usage.completionTokens / secs).toFixed(1)} tokens/s` : '-');
  }
}

function showUsage(u) {
  const cache = u.cachedPromptTokens || u.cacheWriteTokens ? ` (prompt: ${u.cachedPromptTokens} cached, ${u.cacheWriteTokens} written to cache)` : '';
  setStat('tokens', `${u.promptTokens} / ${u.completionTokens}${cache}${u.source === 'ESTIMATED' ? ' (estimated by the gateway)' : ''}`);
  setStat('cost', usd(u.costUsd));
}

/** Attempts as a list; a fallback reads as one ("failed ..., then ... answered"). */
function showAttempts(attempts) {
  const dd = $('stat-attempts');
  dd.replaceChildren();
  if (!attempts.length) return void (dd.textContent = '-');
  const lead = attempts.length > 1 ? `${attempts.length} (fallback)` : '1';
  const ol = document.createElement('ol');
  for (const a of attempts) {
    const li = document.createElement('li');
    li.textContent = a.ok ? `${a.model}: answered (${a.latencyMs} ms)` : `${a.model}: failed, ${a.error ?? 'error'} (${a.latencyMs} ms)`;
    ol.append(li);
  }
  dd.append(lead, ol);
}

function onEnd(r, err) {
  if (run === r) run = null;
  setRunning(false);
  if (err) {
    setStat('state', 'Failed');
    showError($('chat-error'), err);
    if (err.extensions?.attempts) showAttempts(err.extensions.attempts);
  } else if (!r.ended) {
    setStat('state', 'Ended without a final event');
  }
  void refreshSpend();
}

async function stopChat() {
  const r = run;
  if (!r) return;
  r.stop();
  run = null;
  setRunning(false);
  if (!r.requestId) {
    setStat('state', 'Stopped before the gateway answered');
    return;
  }
  setStat('state', 'Stopped by you; waiting for the gateway to record it...');
  // The gateway settles a cancelled request right after the unsubscribe; read its ledger row back.
  for (let i = 0; i < 40; i++) {
    await new Promise((res) => setTimeout(res, 250));
    try {
      const { request } = await gql(key, REQUEST, { id: r.requestId });
      if (request?.outcome) {
        setStat('state', `Stopped by you: recorded as ${request.outcome}`);
        if (request.usage) showUsage(request.usage);
        break;
      }
    } catch (e) {
      showError($('chat-error'), e);
      break;
    }
  }
  await refreshSpend();
}

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  startChat();
});
$('stop').addEventListener('click', () => void stopChat());
$('prompt').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    $('chat-form').requestSubmit();
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && run) void stopChat();
});

// ---- spend --------------------------------------------------------------------------------------------------

async function refreshSpend() {
  if (!key) return;
  try {
    const d = await gql(key, SPEND, { month: month() });
    showError($('spend-error'), null);
    $('gauge-text').textContent = drawGauge($('gauge'), d.me);
    const rows = (rep) =>
      rep.rows.map((x) => ({ key: x.key, value: Number(x.costUsd), label: `${usd(x.costUsd)}, ${x.requests} request${x.requests === 1 ? '' : 's'}` }));
    drawBars(
      $('chart-model'),
      'Cost by model',
      rows(d.byModel).sort((a, b) => b.value - a.value),
    );
    drawBars(
      $('chart-day'),
      'Cost by day',
      rows(d.byDay).sort((a, b) => a.key.localeCompare(b.key)),
    );
    $('month').textContent = `(${month()}, total ${usd(d.byModel.totalUsd)})`;
  } catch (e) {
    showError($('spend-error'), e);
  }
}

$('refresh-spend').addEventListener('click', () => void refreshSpend());

// ---- admin --------------------------------------------------------------------------------------------------

let tenants = [];

async function loadTenants() {
  showError($('admin-error'), null);
  try {
    ({ tenants } = await gql(adminKey, TENANTS));
  } catch (e) {
    return showError($('admin-error'), e);
  }
  const cell = (text) => Object.assign(document.createElement('td'), { textContent: text });
  $('tenants').tBodies[0].replaceChildren(
    ...tenants.map((t) => {
      const tr = document.createElement('tr');
      tr.dataset.tenant = t.id;
      const name = Object.assign(document.createElement('th'), { scope: 'row', textContent: t.name });
      tr.append(
        name,
        cell(usd(t.monthlyBudgetUsd)),
        cell(usd(t.spentThisMonthUsd)),
        cell(usd(t.heldUsd)),
        cell(usd(t.remainingThisMonthUsd)),
        cell(t.requestsPerMinute ?? 'none'),
        cell(t.tokensPerMinute ?? 'none'),
        cell(t.suspendedAt ? 'suspended' : 'active'),
      );
      return tr;
    }),
  );
  const before = $('admin-tenant').value;
  $('admin-tenant').replaceChildren(...tenants.map((t) => new Option(t.name, t.id, false, t.id === before)));
  fillTenantForm();
  $('admin-status').textContent = `${tenants.length} tenant${tenants.length === 1 ? '' : 's'}.`;
}

function fillTenantForm() {
  const t = tenants.find((x) => x.id === $('admin-tenant').value);
  if (!t) return;
  $('admin-budget').value = t.monthlyBudgetUsd ?? '';
  $('admin-rpm').value = t.requestsPerMinute ?? '';
  $('admin-tpm').value = t.tokensPerMinute ?? '';
  access.show(t);
  void loadKeys();
  loadAlerts(adminKey, t.id).catch((e) => showError($('admin-error'), e));
}

/** Runs an alerts action on the selected tenant, showing what it says or what went wrong. */
async function alertsAction(fn, done) {
  showError($('admin-error'), null);
  try {
    await fn(adminKey, $('admin-tenant').value);
    $('admin-status').textContent = done;
  } catch (e) {
    showError($('admin-error'), e);
  }
}
$('alerts-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void alertsAction(saveAlerts, 'Alert settings saved.');
});
$('rotate-secret').addEventListener('click', () => void alertsAction(rotateSecret, 'New signing secret made; the old one signs nothing more.'));

const access = mountAccessControls({
  gql: (query, variables) => gql(adminKey, query, variables),
  selected: () => tenants.find((x) => x.id === $('admin-tenant').value),
  reload: () => loadTenants(),
  done: (text) => {
    $('admin-status').textContent = text;
  },
  fail: (e) => showError($('admin-error'), e),
});

// ---- admin: tenants and keys ------------------------------------------------------------------------------------

/** The selected tenant's keys: names, own limits, this month's spend, rotation and revocation (keys.js). */
const keysView = makeKeysView($('keys'), {
  adminKey: () => adminKey,
  tenant: () => tenants.find((x) => x.id === $('admin-tenant').value),
  grace: () => Number($('rotate-grace').value || 0),
  status: (text) => void ($('admin-status').textContent = text),
  error: (e) => showError($('admin-error'), e),
  newKey: (tenantName, k) => showNewKey(tenantName, k),
});
const loadKeys = () => keysView.load();

function showNewKey(tenantName, apiKey) {
  $('new-key-tenant').textContent = tenantName;
  $('new-key-value').textContent = apiKey.key;
  $('new-key').hidden = false;
}

async function createTenant() {
  showError($('admin-error'), null);
  const name = $('new-tenant-name').value.trim();
  try {
    const { createTenant: r } = await gql(adminKey, CREATE_TENANT, { input: { name, monthlyBudgetUsd: $('new-tenant-budget').value.trim() || null } });
    $('new-tenant-name').value = '';
    $('new-tenant-budget').value = '';
    await loadTenants();
    $('admin-tenant').value = r.tenant.id;
    fillTenantForm();
    // Shown last, so that when the key appears the new tenant is already the selected one.
    showNewKey(r.tenant.name, r.apiKey);
    $('admin-status').textContent = `Created tenant “${r.tenant.name}”.`;
  } catch (e) {
    showError($('admin-error'), e);
  }
}

async function createKey() {
  showError($('admin-error'), null);
  const t = tenants.find((x) => x.id === $('admin-tenant').value);
  if (!t) return;
  try {
    const { createApiKey: k } = await gql(adminKey, CREATE_KEY, { t: t.id });
    showNewKey(t.name, k);
    await loadKeys();
  } catch (e) {
    showError($('admin-error'), e);
  }
}

$('create-tenant-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void createTenant();
});
$('create-key').addEventListener('click', () => void createKey());
$('use-new-key').addEventListener('click', () => {
  $('key').value = $('new-key-value').textContent;
  void useKey($('key').value);
  $('key').focus();
});

async function saveTenant(what) {
  const id = $('admin-tenant').value;
  const num = (v) => (v === '' ? null : Number(v));
  showError($('admin-error'), null);
  try {
    const d =
      what === 'budget'
        ? (await gql(adminKey, SET_BUDGET, { id, budget: $('admin-budget').value.trim() || null })).setTenantBudget
        : (await gql(adminKey, SET_LIMITS, { id, rpm: num($('admin-rpm').value), tpm: num($('admin-tpm').value) })).setTenantLimits;
    await loadTenants();
    $('admin-status').textContent =
      what === 'budget'
        ? `Budget of “${d.name}” is now ${d.monthlyBudgetUsd === null ? 'unlimited' : usd(d.monthlyBudgetUsd)}.`
        : `Limits of “${d.name}”: ${d.requestsPerMinute ?? 'no'} requests/min, ${d.tokensPerMinute ?? 'no'} tokens/min.`;
    void refreshSpend();
  } catch (e) {
    showError($('admin-error'), e);
  }
}

$('admin-key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  adminKey = $('admin-key').value.trim();
  sessionStorage.setItem(ADMIN_KEY, adminKey);
  void loadTenants().then(access.load);
});
$('forget-admin-key').addEventListener('click', () => {
  sessionStorage.removeItem(ADMIN_KEY);
  adminKey = '';
  $('admin-key').value = '';
  $('admin-status').textContent = 'Admin key forgotten.';
});
$('admin-tenant').addEventListener('change', fillTenantForm);
$('limits-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void saveTenant(ev.submitter?.value === 'limits' ? 'limits' : 'budget');
});

// ---- start --------------------------------------------------------------------------------------------------

$('month').textContent = `(${month()})`;
onTransport((t) => setStat('transport', t === 'sse' ? 'SSE (the WebSocket could not connect)' : 'WebSocket (graphql-ws)'));
if (key) {
  $('key').value = key;
  void useKey(key);
}
if (adminKey) {
  $('admin-key').value = adminKey;
  $('admin').open = true;
  void loadTenants().then(access.load);
}
