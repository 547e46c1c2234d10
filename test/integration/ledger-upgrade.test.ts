import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPrisma } from '../../src/infra/prisma';
import { makeReportsService } from '../../src/reports';
import { TEST_DATABASE_URL } from '../support/env';

/**
 * The partitioning migration converts a ledger in place: a database migrated by the previous release and written
 * in its shape (rows of several months, HELD and SETTLED, a trigger another migration put on the ledger) is
 * upgraded; every row is the same, in its month's partition, request ids stay unique, ids continue from the old
 * sequence, the trigger still fires, and the reports equal the sums taken before the upgrade.
 */
const root = path.resolve(__dirname, '../..');
const PARTITIONING = '20261130005403_ledger_partitioned_by_month';
const url = (() => {
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = `${u.pathname}_upgrade_${randomUUID().slice(0, 8)}`;
  return u.toString();
})();
let tmp: string | null = null;

const migrate = (cwd: string) =>
  new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ['--experimental-wasm-modules', '--no-warnings', path.join(cwd, 'prisma/migrate.mjs'), 'apply'],
      { cwd, env: { ...process.env, DATABASE_URL: url }, timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${stdout}${stderr}`)) : resolve(stdout)),
    ),
  );

async function withClient<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: new URL('/postgres', url).toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${new URL(url).pathname.slice(1)}" WITH (FORCE)`);
  await admin.end();
});

const MONTHS = ['2025-12', '2026-02', new Date().toISOString().slice(0, 7)];

test('a ledger written by the previous release is partitioned in place: rows, ids, uniqueness, triggers and reports kept', async () => {
  // The previous release: every migration before the partitioning one.
  tmp = mkdtempSync(path.join(os.tmpdir(), 'llm-gateway-upgrade-'));
  cpSync(path.join(root, 'prisma'), path.join(tmp, 'prisma'), { recursive: true });
  symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'), 'dir');
  for (const d of readdirSync(path.join(tmp, 'prisma/migrations'))) {
    if (/^\d{14}_/.test(d) && d >= PARTITIONING) rmSync(path.join(tmp, 'prisma/migrations', d), { recursive: true });
  }
  await migrate(tmp);

  const tenants = [randomUUID(), randomUUID()];
  const before = await withClient(async (c) => {
    for (const [i, id] of tenants.entries())
      await c.query(`INSERT INTO tenants (id, name, updated_at) VALUES ($1, $2, now())`, [id, `upgrade-${i}-${id.slice(0, 6)}`]);
    // Another migration's trigger on the ledger (as budget alerts keep month spend): it must survive the conversion.
    await c.query(`CREATE TABLE upgrade_probe (n bigint NOT NULL)`);
    await c.query(
      `CREATE FUNCTION upgrade_probe_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO upgrade_probe SELECT count(*) FROM new_rows; RETURN NULL; END $$`,
    );
    await c.query(
      `CREATE TRIGGER usage_ledger_upgrade_probe AFTER INSERT ON usage_ledger REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION upgrade_probe_count()`,
    );
    // Rows as the previous release wrote them: 3 months x 2 tenants x 40 rows, a quarter still HELD.
    await c.query(
      `INSERT INTO usage_ledger (request_id, tenant_id, profile, region, planned_model, model, max_tokens, prompt_tokens, completion_tokens,
                                 price_snapshot, cost_micros, hold_micros, outcome, usage_source, state, lease_expires_at, started_at, ended_at,
                                 idempotency_key, settle_version, gate_applied_version)
       SELECT gen_random_uuid(), t, 'chat_default', 'US_EAST', 'glm-5', CASE WHEN i % 4 = 0 THEN NULL ELSE 'glm-5' END, 100, i, 2 * i,
              '{"glm-5":{"input":"1","output":"2"}}', CASE WHEN i % 4 = 0 THEN 0 ELSE 1000 + i END, 5000,
              CASE WHEN i % 4 = 0 THEN NULL ELSE 'COMPLETED'::"Outcome" END, CASE WHEN i % 4 = 0 THEN NULL ELSE 'PROVIDER'::"UsageSource" END,
              CASE WHEN i % 4 = 0 THEN 'HELD'::"LedgerState" ELSE 'SETTLED'::"LedgerState" END,
              m + interval '1 minute', m + i * interval '13 hours', m + i * interval '13 hours' + interval '2 seconds',
              CASE WHEN i % 10 = 0 THEN 'key-' || i END, CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END, CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END
         FROM unnest($1::uuid[]) AS t, unnest($2::timestamptz[]) AS m, generate_series(1, 40) AS i`,
      [tenants, MONTHS.map((m) => `${m}-01T00:00:00Z`)],
    );
    const rows = (await c.query(`SELECT row_to_json(l)::text AS r FROM usage_ledger l ORDER BY id`)).rows.map((r: { r: string }) => r.r);
    const sums = (
      await c.query(
        `SELECT tenant_id, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, sum(cost_micros) FILTER (WHERE state = 'SETTLED')::text AS cost
           FROM usage_ledger GROUP BY 1, 2 ORDER BY 1, 2`,
      )
    ).rows as { tenant_id: string; month: string; cost: string }[];
    const maxId = (await c.query(`SELECT max(id)::text AS m FROM usage_ledger`)).rows[0].m as string;
    return { rows, sums, maxId };
  });
  expect(before.rows).toHaveLength(240);

  // The new release.
  expect(await migrate(root)).toContain(PARTITIONING);

  await withClient(async (c) => {
    expect((await c.query(`SELECT row_to_json(l)::text AS r FROM usage_ledger l ORDER BY id`)).rows.map((r: { r: string }) => r.r)).toEqual(before.rows);
    const placed = (await c.query(`SELECT tableoid::regclass::text AS p, count(*)::int AS n FROM usage_ledger GROUP BY 1 ORDER BY 1`)).rows;
    expect(placed).toEqual(MONTHS.map((m) => ({ p: `usage_ledger_${m.replace('-', '_')}`, n: 80 })));
    expect((await c.query(`SELECT relkind FROM pg_class WHERE relname = 'usage_ledger'`)).rows[0].relkind).toBe('p');
    expect((await c.query(`SELECT count(*)::int AS n FROM ledger_request_ids i JOIN usage_ledger l USING (request_id, started_at)`)).rows[0].n).toBe(240);

    // A request id already used, in another month, is refused; a new row takes the next id of the old sequence.
    const used = (await c.query(`SELECT request_id FROM usage_ledger ORDER BY id LIMIT 1`)).rows[0].request_id as string;
    const insert = (requestId: string) =>
      c.query(
        `INSERT INTO usage_ledger (request_id, tenant_id, profile, region, planned_model, max_tokens, price_snapshot, lease_expires_at, started_at)
         VALUES ($1, $2, 'chat_default', 'US_EAST', 'glm-5', 100, '{}', now(), now()) RETURNING id::text`,
        [requestId, tenants[0]],
      );
    await expect(insert(used)).rejects.toThrow(/ledger_request_ids_pkey/);
    const fresh = await insert(randomUUID());
    expect(BigInt(fresh.rows[0].id as string)).toBeGreaterThan(BigInt(before.maxId));
    // The trigger fired once for the previous release's insert and once for this one (not for the copy).
    expect((await c.query(`SELECT n::int FROM upgrade_probe ORDER BY n DESC`)).rows).toEqual([{ n: 240 }, { n: 1 }]);
  });

  const db = createPrisma(url, { max: 2 });
  try {
    const reports = makeReportsService({ db });
    for (const s of before.sums) {
      const r = await reports.costReport(s.tenant_id, s.month, 'MODEL');
      expect({ ...s, total: r.totalMicros }).toEqual({ ...s, total: BigInt(s.cost) });
    }
  } finally {
    await db.$disconnect();
  }
});
