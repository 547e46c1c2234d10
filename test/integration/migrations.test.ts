import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * Migrations through the project's own CLI (prisma/migrate.mjs, the WebAssembly schema engine) against real Postgres:
 * a brand-new database is created and migrated, a second run is a no-op, money is BIGINT, and the migrations are in
 * step with schema.prisma.
 */
const root = path.resolve(__dirname, '../..');
const SERVER = 'postgresql://postgres@127.0.0.1:5432';
const scratchName = (tag: string) => `llm_gateway_mig_${tag}_${process.pid}_${randomBytes(4).toString('hex')}`;
const urlOf = (db: string) => `${SERVER}/${db}`;

const created: string[] = [];
let tmp: string | null = null;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a node script with the flag the WebAssembly schema engine needs on Node 20. */
function node(args: string[], env: Record<string, string>, cwd = root): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--experimental-wasm-modules', '--no-warnings', ...args],
      { cwd, env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

const migrateCli = (cmd: string[], databaseUrl: string, cwd = root) => node([path.join(cwd, 'prisma/migrate.mjs'), ...cmd], { DATABASE_URL: databaseUrl }, cwd);

async function withClient<T>(db: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: urlOf(db) });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

const databaseExists = (name: string) =>
  withClient('postgres', async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);

/** Everything about the public schema that a migration can change, in a stable order. */
async function schemaDump(db: string, opts: { withMigrationTable: boolean }) {
  return withClient(db, async (c) => {
    const skip = opts.withMigrationTable ? '' : `_prisma_migrations`;
    const q = async (sql: string) => (await c.query(sql, [skip])).rows;
    return {
      columns: await q(
        `SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default, character_maximum_length, numeric_precision, datetime_precision
           FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> $1 ORDER BY table_name, column_name`,
      ),
      constraints: await q(
        `SELECT cl.relname AS table_name, co.conname, co.contype, pg_get_constraintdef(co.oid) AS def
           FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
          WHERE co.connamespace = 'public'::regnamespace AND cl.relname <> $1 ORDER BY cl.relname, co.conname`,
      ),
      indexes: await q(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> $1 ORDER BY tablename, indexname`),
      enums: await q(
        `SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
          WHERE t.typnamespace = 'public'::regnamespace AND t.typname <> $1 ORDER BY t.typname, e.enumsortorder`,
      ),
      migrations: opts.withMigrationTable
        ? await q(
            `SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, applied_steps_count, logs
               FROM _prisma_migrations WHERE migration_name <> $1 ORDER BY migration_name`,
          )
        : [],
    };
  });
}

type Dump = Awaited<ReturnType<typeof schemaDump>>;
/** The ledger's month partitions are copies of its shape: the comparison is of the partitioned table itself. */
function withoutLedgerPartitioning(d: Dump): Dump {
  const partition = (t: unknown) => /^usage_ledger_(\d{4}_\d{2}|default)$/.test(String(t));
  return {
    ...d,
    columns: d.columns.filter((c) => !partition(c.table_name)),
    constraints: d.constraints.filter((c) => !partition(c.table_name)),
    // A partitioned table's own index reads "ON ONLY" (its partitions carry theirs).
    indexes: d.indexes.filter((i) => !partition(i.tablename)).map((i) => ({ ...i, indexdef: String(i.indexdef).replace(' ON ONLY ', ' ON ') })),
  };
}

const migrationDirs = readdirSync(path.join(root, 'prisma/migrations'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

afterAll(async () => {
  await withClient('postgres', async (c) => {
    for (const name of created) await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('applying migrations to a brand-new database', () => {
  const db = scratchName('fresh');
  let first: Run;

  beforeAll(async () => {
    expect(migrationDirs.length).toBeGreaterThan(0);
    expect(await databaseExists(db)).toBe(false);
    created.push(db);
    first = await migrateCli(['apply'], urlOf(db));
  });

  test('the database is created and every migration is applied, recorded as `prisma migrate deploy` would', async () => {
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toContain(`created database ${db}`);
    expect(first.stdout).toContain(`applied ${migrationDirs.length} migration(s): ${migrationDirs.join(', ')}`);
    expect(await databaseExists(db)).toBe(true);

    const rows = await withClient(
      db,
      async (c) => (await c.query('SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY migration_name')).rows,
    );
    expect(rows.map((r) => r.migration_name)).toEqual(migrationDirs);
    for (const r of rows) {
      // Prisma's checksum is the SHA-256 of migration.sql: `prisma migrate deploy` would accept this history.
      const sql = readFileSync(path.join(root, 'prisma/migrations', r.migration_name, 'migration.sql'));
      expect(r.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(r.finished_at).toBeInstanceOf(Date);
      expect(r.rolled_back_at).toBeNull();
    }

    const tables = await withClient(db, async (c) =>
      (await c.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).rows.map((r) => r.table_name),
    );
    for (const t of ['tenants', 'api_keys', 'models', 'model_prices', 'profiles', 'model_fallbacks', 'profile_overrides', 'usage_ledger', 'idempotency_keys']) {
      expect(tables).toContain(t);
    }
  });

  test('a second apply applies nothing and changes nothing', async () => {
    const before = await schemaDump(db, { withMigrationTable: true });
    const second = await migrateCli(['apply'], urlOf(db));
    expect(second).toMatchObject({ code: 0, stderr: '' });
    expect(second.stdout.trim()).toBe('database is up to date');
    expect(second.stdout).not.toContain('created database');
    const after = await schemaDump(db, { withMigrationTable: true });
    expect(after.columns.length).toBeGreaterThan(50);
    expect(after).toEqual(before);
  });

  test('money columns are BIGINT and no column anywhere is a float, double, real or numeric', async () => {
    const cols = await withClient(
      db,
      async (c) =>
        (await c.query(`SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'`)).rows as Array<{
          table_name: string;
          column_name: string;
          data_type: string;
        }>,
    );
    const money = cols.filter((c) => /micros/.test(c.column_name));
    const byName = (n: string) => money.filter((c) => c.column_name === n);
    for (const name of ['cost_micros', 'hold_micros', 'monthly_budget_micros', 'output_micros_per_million', 'input_micros_per_million']) {
      expect(byName(name).length).toBeGreaterThan(0);
      for (const c of byName(name))
        expect({ col: `${c.table_name}.${c.column_name}`, type: c.data_type }).toEqual({ col: `${c.table_name}.${c.column_name}`, type: 'bigint' });
    }
    // Where each one must be: the tenant budget, the ledger's cost, hold and unit prices, the model's and the history's prices.
    const where = new Set(money.map((c) => `${c.table_name}.${c.column_name}`));
    for (const w of [
      'tenants.monthly_budget_micros',
      'usage_ledger.cost_micros',
      'usage_ledger.hold_micros',
      'usage_ledger.output_micros_per_million',
      'usage_ledger.input_micros_per_million',
      'models.output_micros_per_million',
      'models.input_micros_per_million',
      'model_prices.output_micros_per_million',
      'model_prices.input_micros_per_million',
    ]) {
      expect(where).toContain(w);
    }
    for (const c of money) expect(`${c.table_name}.${c.column_name}: ${c.data_type}`).toBe(`${c.table_name}.${c.column_name}: bigint`);
    const floats = cols.filter((c) => /real|double|numeric|decimal|float|money/i.test(c.data_type));
    expect(floats).toEqual([]);
  });

  test('the migrations are in step with schema.prisma: a database built from schema.prisma alone has the same shape', async () => {
    // The engine's own drift checks (diff from a live database, introspect) fail over the pg driver adapter here
    // ("Column type 'char' could not be deserialized from the database"), so the comparison is done in SQL: the
    // engine writes the whole schema from schema.prisma (diff from empty), that script builds a second database,
    // and the two databases' columns, constraints, indexes and enums must be identical.
    const fromSchema = scratchName('schema');
    await withClient('postgres', (c) => c.query(`CREATE DATABASE "${fromSchema}"`));
    created.push(fromSchema);
    const script = `
      const { readFileSync } = await import('node:fs');
      const { PrismaPg } = await import('@prisma/adapter-pg');
      const { bindMigrationAwareSqlAdapterFactory } = await import('@prisma/driver-adapter-utils');
      const { SchemaEngine } = await import('@prisma/schema-engine-wasm');
      const p = 'prisma/schema.prisma', s = readFileSync(p, 'utf8');
      const engine = await SchemaEngine.new({ datamodels: [[p, s]] }, () => {}, bindMigrationAwareSqlAdapterFactory(new PrismaPg({ connectionString: process.env.DATABASE_URL })));
      const r = await engine.diff({ from: { tag: 'empty' }, to: { tag: 'schemaDatamodel', files: [{ path: p, content: s }] }, script: true, exitCode: null, filters: { externalTables: [], externalEnums: [] } });
      process.stdout.write(r.stdout ?? '', () => process.exit(0));
    `;
    const diff = await node(['--input-type=module', '-e', script], { DATABASE_URL: urlOf(fromSchema) });
    expect(diff.stderr).toBe('');
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain('CREATE TABLE "usage_ledger"');
    await withClient(fromSchema, (c) => c.query(diff.stdout));

    const migrated = withoutLedgerPartitioning(await schemaDump(db, { withMigrationTable: false }));
    const built = await schemaDump(fromSchema, { withMigrationTable: false });
    expect(built.columns.length).toBeGreaterThan(50);
    // What Prisma cannot say, written by hand in migrations: request_id is unique through ledger_request_ids (a
    // partitioned table's unique index must include the month), so the ledger has a plain index; and the request-id
    // table's BRIN index.
    const requestIdKey = built.indexes.find((i) => i.indexname === 'usage_ledger_request_id_key');
    expect(requestIdKey?.indexdef).toMatch(/CREATE UNIQUE INDEX/);
    const handWritten = /^(usage_ledger_request_id_idx|ledger_request_ids_started_at_idx)$/;
    expect(migrated.indexes.filter((i) => handWritten.test(i.indexname as string)).map((i) => i.indexdef)).toEqual([
      'CREATE INDEX ledger_request_ids_started_at_idx ON public.ledger_request_ids USING brin (started_at)',
      'CREATE INDEX usage_ledger_request_id_idx ON public.usage_ledger USING btree (request_id)',
    ]);
    expect({ ...migrated, indexes: migrated.indexes.filter((i) => !handWritten.test(i.indexname as string)) }).toEqual({
      ...built,
      indexes: built.indexes.filter((i) => i !== requestIdKey),
    });
  });
});

describe('npm run db:check (schema.prisma covered by the migrations)', () => {
  test('exits 0 on the repository as it stands', async () => {
    const db = scratchName('check');
    created.push(db); // the check connects to (and so creates) the database it is given
    const r = await new Promise<Run>((resolve) =>
      execFile('npm', ['run', '-s', 'db:check'], { cwd: root, env: { ...process.env, DATABASE_URL: urlOf(db) }, timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
      ),
    );
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toContain('migrations cover schema.prisma');
  });

  test('exits 1, naming the command to run, when schema.prisma has a change no migration covers', async () => {
    // A copy of prisma/ with one column more, next to a link to the project's node_modules.
    tmp = mkdtempSync(path.join(os.tmpdir(), 'llm-gateway-mig-'));
    cpSync(path.join(root, 'prisma'), path.join(tmp, 'prisma'), { recursive: true });
    symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'), 'dir');
    const schemaPath = path.join(tmp, 'prisma/schema.prisma');
    const schema = readFileSync(schemaPath, 'utf8');
    const changed = schema.replace(/model Tenant \{\n/, 'model Tenant {\n  driftProbe Int? @map("drift_probe")\n');
    expect(changed).not.toBe(schema);
    writeFileSync(schemaPath, changed);

    const db = scratchName('check');
    created.push(db);
    const r = await migrateCli(['check'], urlOf(db), tmp);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('npm run db:diff');
    expect(r.stderr).toContain('drift_probe');
  });
});
