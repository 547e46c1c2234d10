import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { createRedis } from '../../src/infra/redis';
import { makeEpoch } from '../../src/infra/epoch';
import { makeAdminService } from '../../src/tenants/admin-service';
import { runTenantCli } from '../../src/tenants/cli';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { gql, gqlOk, hello, CHAT, startApp, startSim, testEnv, uniqueName } from '../support/app';

/** `npm run tenant`: the first-ten-minutes path from nothing to a working key, over the admin use cases. */
let sim: Simulator;
let app: App;
let db: Db;
let redis: ReturnType<typeof createRedis>;
beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  redis = createRedis(TEST_REDIS_URL);
});
afterAll(async () => {
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
  redis?.disconnect();
});

const run = async (...argv: string[]) => {
  let out = '';
  let err = '';
  const code = await runTenantCli(
    argv,
    { admin: makeAdminService({ db, epoch: makeEpoch(redis, { maxAgeMs: 5_000 }) }), db },
    { out: (t) => void (out += t), err: (t) => void (err += t) },
  );
  return { code, out, err };
};
const keyOf = (out: string) => /^key {5}(\S+)$/m.exec(out)?.[1];

it('create prints the key, which chats at once; key adds one; revoke stops it; list shows the tenant', async () => {
  const name = uniqueName('acme');
  const created = await run('create', name, '--budget', '25', '--rpm', '60');
  expect(created).toMatchObject({ code: 0, err: '' });
  const key = keyOf(created.out)!;
  expect(key).toBeDefined();
  const me = (await gqlOk(app.url, key, `{ me { name monthlyBudgetUsd requestsPerMinute } }`)).me;
  expect(me).toEqual({ name, monthlyBudgetUsd: '25.000000', requestsPerMinute: 60 });
  expect((await gqlOk(app.url, key, CHAT, hello('fast_classify', { maxTokens: 5 }))).chat.content.length).toBeGreaterThan(0);

  const second = await run('key', name);
  expect(second.code).toBe(0);
  const key2 = keyOf(second.out)!;
  const keyId = /^key id {2}(\S+)$/m.exec(second.out)![1]!;
  expect((await gql(app.url, key2, `{ me { name } }`)).status).toBe(200);
  expect((await run('revoke', keyId)).code).toBe(0);
  expect((await gql(app.url, key2, `{ me { name } }`)).status).toBe(401);
  expect((await run('list')).out).toContain(name);
});

it('refusals: a taken name is CONFLICT (exit 1); bad usage prints the usage (exit 2)', async () => {
  const name = uniqueName('dup');
  expect((await run('create', name)).code).toBe(0);
  const dup = await run('create', name);
  expect(dup.code).toBe(1);
  expect(dup.err).toMatch(/^CONFLICT/);
  const bad = await run('create', uniqueName(), '--rpm', 'lots');
  expect(bad).toMatchObject({ code: 2 });
  expect(bad.err).toMatch(/--rpm expects a whole number/);
  expect((await run()).err).toMatch(/usage: npm run tenant/);
  expect((await run('key', 'no-such-tenant-anywhere')).code).toBe(1);
});

it('npm run tenant -- create runs as a process and prints the key', async () => {
  const name = uniqueName('proc');
  const root = path.resolve(__dirname, '../..');
  const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', 'src/tenants/cli.ts', 'create', name], {
    cwd: root,
    env: { ...process.env, ...testEnv() },
  });
  expect(keyOf(stdout)).toMatch(/\S{20,}/);
  expect(await db.tenant.count({ where: { name } })).toBe(1);
});
