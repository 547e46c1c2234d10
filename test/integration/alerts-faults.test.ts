import { randomUUID } from 'node:crypto';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool } from '../../src/infra/postgres';
import { makeLedger } from '../../src/accounting/ledger';
import { settledRow } from '../support/ledger-entries';
import type { Simulator } from '../../src/simulator/server';
import { TEST_ADMIN_KEY, createTenant, gqlOk, startApp, startSim, wsClient } from '../support/app';
import { makeStreamClient } from '../support/stream-clients';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { startTcpProxy, type TcpProxy } from '../support/faults';
import { startHttpsReceiver, type HttpsReceiver } from '../support/https-receiver';
import { until } from '../support/wait';

/**
 * The delivery guarantees under the faults that would break them: Redis refusing the subscriber publish (the event
 * stays in the outbox and goes out after recovery, and webhooks are not held back), and an instance that died while
 * it held a webhook lease (another instance retries once the lease is over, never while it runs). The instances run
 * no timers here: each pass is made by the test.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const sql = createSqlPool(TEST_DATABASE_URL, { max: 2 });
const ledger = makeLedger(db, sql);
let sim: Simulator;
let receiver: HttpsReceiver;
let proxy: TcpProxy;
let cut: App;
let other: App;

beforeAll(async () => {
  sim = await startSim(0);
  receiver = await startHttpsReceiver();
  const u = new URL(TEST_REDIS_URL);
  proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 6379) });
  const env = { ALERT_WEBHOOKS_ALLOW_PRIVATE: 'true', ALERT_WEBHOOK_CA_FILE: receiver.caFile };
  cut = await startApp({ ...env, REDIS_URL: proxy.url(TEST_REDIS_URL) }, sim, { background: false });
  other = await startApp(env, sim, { background: false });
});

afterAll(async () => {
  await Promise.all([cut?.stop(), other?.stop()]);
  await Promise.all([proxy?.close(), sim?.close(), receiver?.close(), db.$disconnect(), sql.end()]);
});

async function crossHalf(tenantId: string) {
  await settledRow(ledger, tenantId, 6_000_000n);
  return db.budgetAlert.findFirstOrThrow({ where: { tenantId } });
}

it('Redis refusing the publish leaves the event in the outbox; it reaches subscribers after recovery, and the webhook goes out meanwhile', async () => {
  const t = await createTenant(other.url, { monthlyBudgetUsd: '10' });
  await gqlOk(
    other.url,
    TEST_ADMIN_KEY,
    `mutation($id: ID!, $u: String) { setTenantAlerts(tenantId: $id, thresholds: [50], webhookUrl: $u) { webhookSecret } }`,
    { id: t.id, u: `${receiver.origin}/fault/${t.id}` },
  );
  const ws = wsClient(other.url, TEST_ADMIN_KEY);
  const got: any[] = [];
  const unsubscribe = ws.subscribe(
    { query: `subscription($id: ID) { budgetEvents(tenantId: $id) { id thresholdPercent } }`, variables: { id: t.id } },
    { next: (v) => got.push(v.data?.budgetEvents), error: () => undefined, complete: () => undefined },
  );
  try {
    await until(
      async () => {
        await other.services.alerts.events.publish({
          id: 'probe',
          tenantId: t.id,
          kind: 'FORECAST',
          month: '2026-11',
          thresholdPercent: null,
          spentMicros: 0n,
          budgetMicros: null,
          exhaustsOn: null,
          createdAt: new Date(),
        });
        return got.some((e) => e?.id === 'probe');
      },
      'the subscription to be live',
      10_000,
      200,
    );

    const row = await crossHalf(t.id);
    proxy.refuse(true);
    proxy.cut();
    await until(async () => {
      await cut.alerts.deliverOnce();
      return receiver.received.some((h) => h.path === `/fault/${t.id}`);
    }, 'the webhook while Redis is cut');
    expect((await db.budgetAlert.findUniqueOrThrow({ where: { id: row.id } })).publishedAt).toBeNull();
    expect(got.filter((e) => e?.id === row.eventId)).toEqual([]);

    proxy.refuse(false);
    await until(async () => {
      await cut.alerts.deliverOnce();
      return (await db.budgetAlert.findUniqueOrThrow({ where: { id: row.id } })).publishedAt !== null;
    }, 'the publish after Redis is back');
    await until(() => got.some((e) => e?.id === row.eventId), 'the subscriber to get the event');
    expect(got.filter((e) => e?.id === row.eventId)).toEqual([{ id: row.eventId, thresholdPercent: 50 }]);
  } finally {
    unsubscribe();
    await ws.dispose();
  }
});

it('a webhook leased by an instance that died is left alone until the lease ends, then retried once by another', async () => {
  const t = await createTenant(other.url, { monthlyBudgetUsd: '10' });
  await gqlOk(
    other.url,
    TEST_ADMIN_KEY,
    `mutation($id: ID!, $u: String) { setTenantAlerts(tenantId: $id, thresholds: [50], webhookUrl: $u) { webhookSecret } }`,
    { id: t.id, u: `${receiver.origin}/lease/${t.id}` },
  );
  const row = await crossHalf(t.id);
  // What a claim leaves when its instance dies before the POST's outcome is written: attempt 1 taken, lease running.
  await db.budgetAlert.update({ where: { id: row.id }, data: { attempts: 1, leaseUntil: new Date(Date.now() + 60_000) } });
  await Promise.all([cut.alerts.deliverOnce(), other.alerts.deliverOnce()]);
  expect(receiver.received.filter((h) => h.path === `/lease/${t.id}`)).toHaveLength(0);

  await db.$executeRaw`UPDATE budget_alert_outbox SET lease_until = now() - interval '1 second' WHERE id = ${row.id}`;
  await Promise.all([cut.alerts.deliverOnce(), other.alerts.deliverOnce()]);
  const after = await db.budgetAlert.findUniqueOrThrow({ where: { id: row.id } });
  expect(after).toMatchObject({ webhookStatus: 'DELIVERED', attempts: 2 });
  expect(receiver.received.filter((h) => h.path === `/lease/${t.id}`)).toHaveLength(1);
});

it('shutdown ends open budgetEvents streams (graphql-ws and SSE) instead of waiting on them', async () => {
  const app = await startApp({}, sim, { background: false });
  const ended: string[] = [];
  const live: string[] = [];
  const clientsOpen = (['apollo-ws', 'graphql-sse'] as const).map((name) => {
    const c = makeStreamClient(name, app.url, TEST_ADMIN_KEY);
    c.subscribe(
      `subscription { budgetEvents { id } }`,
      {},
      {
        next: (d) => live.push(`${name}:${d.budgetEvents.id}`),
        error: () => ended.push(name),
        complete: () => ended.push(name),
      },
    );
    return c;
  });
  try {
    await until(
      async () => {
        await app.services.alerts.events.publish({
          id: 'probe',
          tenantId: randomUUID(),
          kind: 'FORECAST',
          month: '2026-11',
          thresholdPercent: null,
          spentMicros: 0n,
          budgetMicros: null,
          exhaustsOn: null,
          createdAt: new Date(),
        });
        return live.includes('apollo-ws:probe') && live.includes('graphql-sse:probe');
      },
      'both subscriptions to be live',
      10_000,
      200,
    );
    await app.stop();
    await until(() => ended.length === 2, 'both streams to end');
  } finally {
    await Promise.all(clientsOpen.map((c) => c.dispose()));
    await app.stop();
  }
});
