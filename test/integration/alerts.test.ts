import { createHmac, randomUUID } from 'node:crypto';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool } from '../../src/infra/postgres';
import { makeLedger } from '../../src/accounting/ledger';
import { settledRow } from '../support/ledger-entries';
import { parseUsd } from '../../src/accounting/money';
import type { BudgetEventView } from '../../src/alerts/types';
import { makeWebhookSender } from '../../src/alerts/webhook-sender';
import type { Simulator } from '../../src/simulator/server';
import { CHAT, TEST_ADMIN_KEY, createTenant, gql, gqlOk, hello, startApp, startSim } from '../support/app';
import { TEST_DATABASE_URL } from '../support/env';
import { startHttpsReceiver, type HttpsReceiver } from '../support/https-receiver';
import { makeStreamClient, type StreamClient } from '../support/stream-clients';
import { until } from '../support/wait';

/**
 * Budget alerts end to end on two instances: thresholds decided once under concurrency, the budgetEvents
 * subscription on the other instance (graphql-ws and SSE), signed webhooks to a real https receiver with retries,
 * the address guard, and wrong inputs. Real Postgres, Redis, simulator and TLS.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
const sql = createSqlPool(TEST_DATABASE_URL, { max: 4 });
const ledger = makeLedger(db, sql);
let sim: Simulator;
let receiver: HttpsReceiver;
let a: App;
let b: App;
let strict: App;
const clients: StreamClient[] = [];

beforeAll(async () => {
  sim = await startSim(0);
  receiver = await startHttpsReceiver();
  const env = {
    ALERT_WEBHOOKS_ALLOW_PRIVATE: 'true',
    ALERT_WEBHOOK_CA_FILE: receiver.caFile,
    ALERT_DELIVERY_INTERVAL_MS: '100',
    ALERT_WEBHOOK_RETRY_BASE_MS: '100',
    ALERT_WEBHOOK_MAX_ATTEMPTS: '4',
  };
  [a, b] = await Promise.all([startApp(env, sim), startApp(env, sim)]);
  // No private addresses and no jobs: only its mutations are used.
  strict = await startApp({}, sim, { background: false });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await Promise.all([a?.stop(), b?.stop(), strict?.stop()]);
  await Promise.all([sim?.close(), receiver?.close(), db.$disconnect(), sql.end()]);
});

const SET_ALERTS = `mutation($tenantId: ID!, $thresholds: [Int!], $webhookUrl: String) {
  setTenantAlerts(tenantId: $tenantId, thresholds: $thresholds, webhookUrl: $webhookUrl) { tenant { id alertThresholds alertWebhookUrl } webhookSecret } }`;
const EVENTS = `subscription($tenantId: ID) { budgetEvents(tenantId: $tenantId) { id tenantId kind month thresholdPercent spentUsd budgetUsd exhaustsOn } }`;
const ALERTS = `query($tenantId: ID, $first: Int, $after: String) { budgetAlertsConnection(tenantId: $tenantId, first: $first, after: $after) {
  edges { cursor node { id webhookStatus attempts deliveredAt event { id kind thresholdPercent spentUsd } } } pageInfo { hasNextPage endCursor } } }`;
const DELIVERIES = `query($tenantId: ID, $first: Int, $after: String) { alertDeliveriesConnection(tenantId: $tenantId, first: $first, after: $after) {
  edges { node { eventId attempt statusCode ok error url } } pageInfo { hasNextPage endCursor } } }`;

/** Subscribes on `app` and resolves once the subscription is live (a probe published there has come back). */
async function subscribe(app: App, clientName: 'apollo-ws' | 'graphql-sse', key: string, tenantId: string | null, probeTenant: string) {
  const client = makeStreamClient(clientName, app.url, key);
  clients.push(client);
  const events: any[] = [];
  const errors: unknown[] = [];
  client.subscribe(EVENTS, { tenantId }, { next: (d) => events.push(d.budgetEvents), error: (e) => errors.push(e), complete: () => undefined });
  const probe: BudgetEventView = {
    id: `probe-${randomUUID()}`,
    tenantId: probeTenant,
    kind: 'FORECAST',
    month: '2026-11',
    thresholdPercent: null,
    spentMicros: 0n,
    budgetMicros: null,
    exhaustsOn: null,
    createdAt: new Date(),
  };
  await until(
    async () => {
      await app.services.alerts.events.publish(probe);
      return events.some((e) => e.id === probe.id) || errors.length > 0;
    },
    `${clientName} budgetEvents subscription to be live`,
    10_000,
    200,
  );
  expect(errors).toEqual([]);
  return { events: () => events.filter((e) => !String(e.id).startsWith('probe-')), errors };
}

const micros = (usd: string) => parseUsd(usd);

async function settledSpend(tenantId: string): Promise<bigint> {
  const r = await db.ledgerEntry.aggregate({ where: { tenantId, state: 'SETTLED' }, _sum: { costMicros: true } });
  return r._sum.costMicros ?? 0n;
}

it('under 200 concurrent requests on two instances each threshold fires exactly once, and reaches subscribers on the other instance', async () => {
  const t = await createTenant(a.url);
  // One request's cost sizes a budget the 200 requests overrun (the gate refuses the rest).
  const first = await gqlOk(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 64 }));
  const budget = micros(first.chat.usage.costUsd) * 60n;
  await gqlOk(a.url, TEST_ADMIN_KEY, `mutation($id: ID!, $b: Usd) { setTenantBudget(tenantId: $id, monthlyBudgetUsd: $b) { id } }`, {
    id: t.id,
    b: (Number(budget) / 1e6).toFixed(6),
  });
  const thresholds = [10, 25, 50, 75, 90, 100];
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, thresholds });

  const adminWs = await subscribe(b, 'apollo-ws', TEST_ADMIN_KEY, t.id, t.id);
  const tenantSse = await subscribe(b, 'graphql-sse', t.key, null, t.id);

  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello('chat_default', { maxTokens: 64 }))));
  // The budget was overrun (the gate refused some); on a busy machine a few may also miss an upstream deadline.
  expect(results.some((r) => r.errors?.[0]?.extensions?.code === 'BUDGET_EXCEEDED')).toBe(true);

  const spent = await settledSpend(t.id);
  const expected = thresholds.filter((p) => spent * 100n >= budget * BigInt(p));
  expect(expected.length).toBeGreaterThanOrEqual(3);
  const rows = await db.budgetAlert.findMany({ where: { tenantId: t.id }, orderBy: { threshold: 'asc' } });
  expect(rows.map((r) => r.threshold)).toEqual(expected);
  for (const r of rows) expect(r.spentMicros * 100n >= budget * BigInt(r.threshold!)).toBe(true);
  expect((await db.tenantMonthSpend.findMany({ where: { tenantId: t.id } })).map((s) => s.spentMicros)).toEqual([spent]);

  const ids = rows.map((r) => r.eventId).sort();
  await until(() => adminWs.events().length >= ids.length && tenantSse.events().length >= ids.length, 'both subscribers to get every event');
  expect(
    adminWs
      .events()
      .map((e) => e.id)
      .sort(),
  ).toEqual(ids);
  expect(
    tenantSse
      .events()
      .map((e) => e.id)
      .sort(),
  ).toEqual(ids);
  expect(
    tenantSse
      .events()
      .map((e) => e.thresholdPercent)
      .sort((x, y) => x - y),
  ).toEqual(expected);
  // A tenant's subscription never sees another tenant's events; its alert log is its own.
  const other = await createTenant(a.url);
  const log = await gqlOk(a.url, other.key, ALERTS, {});
  expect(log.budgetAlertsConnection.edges).toEqual([]);
}, 60_000);

/** A settled ledger row of `costMicros` for `tenantId`: the trigger decides its thresholds. */
async function spend(tenantId: string, costMicros: bigint): Promise<void> {
  await settledRow(ledger, tenantId, costMicros);
}

const validSignature = (secret: string, h: { headers: Record<string, unknown>; body: string }) =>
  h.headers['x-gateway-signature'] === `sha256=${createHmac('sha256', secret).update(h.body).digest('hex')}`;

it('webhooks are signed, retried after 500s with the same event id, logged, and given up after the max attempts', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '10' });
  const set = await gqlOk(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, thresholds: [50], webhookUrl: `${receiver.origin}/hook/${t.id}` });
  const secret: string = set.setTenantAlerts.webhookSecret;
  expect(secret).toMatch(/^whsec_/);
  expect(set.setTenantAlerts.tenant.alertWebhookUrl).toBe(`${receiver.origin}/hook/${t.id}`);
  const mine = () => receiver.received.filter((h) => h.path === `/hook/${t.id}`);
  receiver.answer = (h) => (h.path.startsWith('/hook/') && receiver.received.filter((x) => x.path === h.path).length <= 2 ? 500 : 200);

  await spend(t.id, 6_000_000n);
  const row = await db.budgetAlert.findFirstOrThrow({ where: { tenantId: t.id } });
  await until(async () => (await db.budgetAlert.findUniqueOrThrow({ where: { id: row.id } })).webhookStatus === 'DELIVERED', 'the webhook to be delivered');
  expect(mine()).toHaveLength(3);
  for (const h of mine()) {
    expect(h.headers['x-gateway-event-id']).toBe(row.eventId);
    expect(validSignature(secret, h)).toBe(true);
    const body = JSON.parse(h.body);
    expect(body).toMatchObject({
      id: row.eventId,
      type: 'budget.threshold',
      tenantId: t.id,
      thresholdPercent: 50,
      spentUsd: '6.000000',
      budgetUsd: '10.000000',
    });
    expect(h.headers['x-gateway-timestamp']).toBe(String(Math.floor(Date.parse(body.sentAt) / 1000)));
  }
  const log = await gqlOk(a.url, TEST_ADMIN_KEY, DELIVERIES, { tenantId: t.id, first: 2 });
  expect(log.alertDeliveriesConnection.edges.map((e: any) => [e.node.attempt, e.node.statusCode, e.node.ok])).toEqual([
    [3, 200, true],
    [2, 500, false],
  ]);
  const rest = await gqlOk(b.url, TEST_ADMIN_KEY, DELIVERIES, { tenantId: t.id, first: 2, after: log.alertDeliveriesConnection.pageInfo.endCursor });
  expect(rest.alertDeliveriesConnection.edges.map((e: any) => [e.node.attempt, e.node.statusCode, e.node.error])).toEqual([[1, 500, 'answered 500']]);
  expect(rest.alertDeliveriesConnection.pageInfo.hasNextPage).toBe(false);

  // Rotated: the next event is signed with the new secret only. This receiver always fails: FAILED after 4 attempts.
  const rotated = await gqlOk(a.url, TEST_ADMIN_KEY, `mutation($id: ID!) { rotateAlertWebhookSecret(tenantId: $id) { webhookSecret } }`, { id: t.id });
  const newSecret: string = rotated.rotateAlertWebhookSecret.webhookSecret;
  expect(newSecret).not.toBe(secret);
  receiver.answer = () => 500;
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, thresholds: [50, 90] });
  await spend(t.id, 4_000_000n);
  const failed = await db.budgetAlert.findFirstOrThrow({ where: { tenantId: t.id, threshold: 90 } });
  await until(async () => (await db.budgetAlert.findUniqueOrThrow({ where: { id: failed.id } })).webhookStatus === 'FAILED', 'the webhook to be given up');
  const attempts = mine().filter((h) => h.headers['x-gateway-event-id'] === failed.eventId);
  expect(attempts).toHaveLength(4);
  for (const h of attempts) expect(validSignature(newSecret, h)).toBe(true);
  // The secrets were shown once; the audit trail records that they were made, never what they are.
  const audit = await db.auditEntry.findMany({ where: { tenantId: t.id } });
  expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['setTenantAlerts', 'rotateAlertWebhookSecret']));
  expect(JSON.stringify(audit.map((e) => [e.oldValue, e.newValue]))).not.toMatch(/whsec_/);
  const alerts = await gqlOk(a.url, t.key, ALERTS, { first: 10 });
  expect(alerts.budgetAlertsConnection.edges.map((e: any) => [e.node.event.thresholdPercent, e.node.webhookStatus, e.node.attempts])).toEqual([
    [90, 'FAILED', 4],
    [50, 'DELIVERED', 3],
  ]);
}, 60_000);

it('without the development switch a webhook to a loopback address is refused, by name and by literal', async () => {
  const sender = makeWebhookSender({ allowPrivate: false, extraCaPem: null, connectTimeoutMs: 2000, responseTimeoutMs: 2000 });
  const event: BudgetEventView = {
    id: randomUUID(),
    tenantId: randomUUID(),
    kind: 'THRESHOLD',
    month: '2026-11',
    thresholdPercent: 50,
    spentMicros: 1n,
    budgetMicros: 2n,
    exhaustsOn: null,
    createdAt: new Date(),
  };
  const before = receiver.received.length;
  try {
    const byName = await sender.send(`https://localhost:${receiver.port}/ssrf`, 's', event);
    expect(byName).toMatchObject({ ok: false, statusCode: null, permanent: true });
    expect(byName.error).toMatch(/localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
    const literal = await sender.send(`${receiver.origin}/ssrf`, 's', event);
    expect(literal).toMatchObject({ ok: false, permanent: true });
    expect(literal.error).toMatch(/127\.0\.0\.1 resolves to 127\.0\.0\.1, a loopback address/);
  } finally {
    await sender.close();
  }
  expect(receiver.received.length).toBe(before);

  // And the admin cannot even set it there without the switch: nothing written.
  const t = await createTenant(strict.url);
  const r = await gql(strict.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, webhookUrl: `${receiver.origin}/hook` });
  expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'webhookUrl' });
  expect(r.errors?.[0]?.message).toMatch(/127\.0\.0\.1 is a loopback address/);
  expect((await db.tenant.findUniqueOrThrow({ where: { id: t.id } })).alertWebhookUrl).toBeNull();
});

it('wrong inputs get their code and a message a person can act on, and write nothing', async () => {
  const t = await createTenant(a.url);
  const auditBefore = await db.auditEntry.count({ where: { tenantId: t.id } });
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ thresholds: [0] }, 'BAD_USER_INPUT', /from 1 to 1000, got 0/],
    [{ thresholds: [1001] }, 'BAD_USER_INPUT', /got 1001/],
    [{ thresholds: [50, 50] }, 'BAD_USER_INPUT', /50 appears more than once/],
    [{ thresholds: Array.from({ length: 11 }, (_, i) => i + 1) }, 'BAD_USER_INPUT', /at most 10/],
    [{ webhookUrl: 'http://hooks.example.com/x' }, 'BAD_USER_INPUT', /https:\/\//],
    [{ webhookUrl: 'nope' }, 'BAD_USER_INPUT', /not a URL/],
    [{}, 'BAD_USER_INPUT', /give thresholds, webhookUrl or both/],
  ];
  for (const [args, code, msg] of cases) {
    const r = await gql(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, ...args });
    expect(r.status).toBe(200);
    expect(r.errors?.[0]?.extensions?.code).toBe(code);
    expect(r.errors?.[0]?.message).toMatch(msg);
  }
  const unknown = await gql(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: randomUUID(), thresholds: [10] });
  expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const malformed = await gql(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: 'not-a-uuid', thresholds: [10] });
  expect(malformed.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const asTenant = await gql(a.url, t.key, SET_ALERTS, { tenantId: t.id, thresholds: [10] });
  expect(asTenant.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const rotateAsTenant = await gql(a.url, t.key, `mutation($id: ID!) { rotateAlertWebhookSecret(tenantId: $id) { webhookSecret } }`, { id: t.id });
  expect(rotateAsTenant.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const deliveriesAsTenant = await gql(a.url, t.key, DELIVERIES, {});
  expect(deliveriesAsTenant.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const otherTenantsAlerts = await gql(a.url, t.key, ALERTS, { tenantId: randomUUID() });
  expect(otherTenantsAlerts.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const badPage = await gql(a.url, TEST_ADMIN_KEY, ALERTS, { first: 0 });
  expect(badPage.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  const badCursor = await gql(a.url, TEST_ADMIN_KEY, ALERTS, { after: 'zzz' });
  expect(badCursor.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });

  const after = await db.tenant.findUniqueOrThrow({ where: { id: t.id } });
  expect(after.alertThresholds).toEqual([50, 80, 100]);
  expect(after.alertWebhookUrl).toBeNull();
  expect(after.alertWebhookSecret).toBeNull();
  expect(await db.auditEntry.count({ where: { tenantId: t.id } })).toBe(auditBefore);

  // Another tenant's events are FORBIDDEN on the subscription too.
  const c = makeStreamClient('graphql-sse', a.url, t.key);
  clients.push(c);
  const errors = await new Promise<any>((resolve) =>
    c.subscribe(EVENTS, { tenantId: randomUUID() }, { next: () => undefined, error: resolve, complete: () => resolve(null) }),
  );
  expect(errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
});

it('a forecast is made at most once a day per tenant, across instances, and reaches the log', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '10' });
  await spend(t.id, 3_000_000n);
  const now = new Date();
  // Two days into this month, 3 of 10 dollars spent: the pace runs the budget out within the month.
  const early = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 3));
  expect(await a.alerts.forecastOnce(early)).toBeGreaterThanOrEqual(1);
  expect(await b.alerts.forecastOnce(early)).toBe(0);
  const rows = await db.budgetAlert.findMany({ where: { tenantId: t.id, kind: 'FORECAST' } });
  expect(rows).toHaveLength(1);
  // 10 dollars at 1.5 a day from the 1st: the 7th.
  expect(rows[0]!.exhaustsOn?.toISOString().slice(0, 10)).toBe(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 7, 16)).toISOString().slice(0, 10));
  const log = await gqlOk(
    b.url,
    TEST_ADMIN_KEY,
    `query($id: ID) { budgetAlertsConnection(tenantId: $id) { edges { node { event { kind exhaustsOn spentUsd budgetUsd } } } } }`,
    { id: t.id },
  );
  expect(log.budgetAlertsConnection.edges[0].node.event).toMatchObject({ kind: 'FORECAST', spentUsd: '3.000000', budgetUsd: '10.000000' });
});

it('the tenant shows its alert settings; a null thresholds list restores the default, [] turns them off', async () => {
  const t = await createTenant(a.url);
  const q = `query($id: ID!) { tenant(id: $id) { alertThresholds alertWebhookUrl } }`;
  expect((await gqlOk(b.url, TEST_ADMIN_KEY, q, { id: t.id })).tenant).toEqual({ alertThresholds: [50, 80, 100], alertWebhookUrl: null });
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, thresholds: [] });
  expect((await gqlOk(b.url, TEST_ADMIN_KEY, q, { id: t.id })).tenant.alertThresholds).toEqual([]);
  await gqlOk(a.url, TEST_ADMIN_KEY, SET_ALERTS, { tenantId: t.id, thresholds: null });
  expect((await gqlOk(b.url, t.key, `{ me { alertThresholds } }`)).me.alertThresholds).toEqual([50, 80, 100]);
  const audit = await db.auditEntry.findMany({ where: { tenantId: t.id, action: 'setTenantAlerts' } });
  expect(audit).toHaveLength(2);
});
