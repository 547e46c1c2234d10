#!/usr/bin/env node
// Prisma migrations without a download: the schema engine compiled to WebAssembly (@prisma/schema-engine-wasm)
// over the pg driver adapter. The files stay standard Prisma migrations (prisma/migrations/<name>/migration.sql,
// recorded in _prisma_migrations), so `prisma migrate deploy` works on them wherever its binary can be fetched.
//
//   node --experimental-wasm-modules prisma/migrate.mjs apply          create the database if needed, apply pending
//   node --experimental-wasm-modules prisma/migrate.mjs diff <name>    write the next migration from schema.prisma
//   node --experimental-wasm-modules prisma/migrate.mjs check          exit 1 when schema.prisma has unmigrated changes
//
// DATABASE_URL names the database (default postgresql://postgres@127.0.0.1:5432/llm_gateway).
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import { SchemaEngine } from '@prisma/schema-engine-wasm';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaPath = path.join(here, 'schema.prisma');
const migrationsDir = path.join(here, 'migrations');
// The schema as of the newest migration: the next migration is the datamodel-to-datamodel diff from it, which needs
// no shadow database.
const snapshotPath = path.join(migrationsDir, 'schema-snapshot.prisma');
const LOCK = 'migration_lock.toml';
const filters = { externalTables: [], externalEnums: [] };
const databaseUrl = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/llm_gateway';

/** Creates the database named by `url` when it does not exist (connecting to the server's `postgres` database). */
export async function ensureDatabase(url) {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`).catch((e) => {
        if (e.code !== '42P04') throw e; // created meanwhile by another process
      });
      return true;
    }
    return false;
  } finally {
    await client.end();
  }
}

/**
 * The pg adapter's executeScript splits a migration on every ";" and runs the pieces one by one, which breaks any
 * statement with a ";" inside (a plpgsql function body, a string) and leaves a failed migration half applied. A
 * migration is sent whole instead, as one simple-protocol query: Postgres runs it in one implicit transaction, as
 * `prisma migrate deploy`'s native engine does.
 */
class WholeScriptPg extends PrismaPg {
  async connect() {
    const adapter = await super.connect();
    const pool = adapter.client;
    adapter.executeScript = async (script) => {
      try {
        await pool.query(script);
      } catch (error) {
        adapter.onError(error);
      }
    };
    return adapter;
  }
}

async function engineFor(url, schemaText) {
  const logs = [];
  const engine = await SchemaEngine.new(
    { datamodels: [[schemaPath, schemaText]] },
    (line) => logs.push(line),
    bindMigrationAwareSqlAdapterFactory(new WholeScriptPg({ connectionString: url })),
  );
  return engine;
}

async function migrationList() {
  const dirs = existsSync(migrationsDir)
    ? (await readdir(migrationsDir, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()
    : [];
  const migrationDirectories = [];
  for (const dir of dirs) {
    const sql = await readFile(path.join(migrationsDir, dir, 'migration.sql'), 'utf8');
    migrationDirectories.push({ path: dir, migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: sql } } });
  }
  const lockPath = path.join(migrationsDir, LOCK);
  const lock = existsSync(lockPath) ? await readFile(lockPath, 'utf8') : 'provider = "postgresql"\n';
  return { baseDir: migrationsDir, lockfile: { path: LOCK, content: lock }, shadowDbInitScript: '', migrationDirectories };
}

/** Applies every pending migration; returns the names applied (none on a second run). */
export async function applyMigrations(url = databaseUrl) {
  const created = await ensureDatabase(url);
  const engine = await engineFor(url, await readFile(schemaPath, 'utf8'));
  const { appliedMigrationNames } = await engine.applyMigrations({ migrationsList: await migrationList(), filters });
  return { created, applied: appliedMigrationNames };
}

async function diffSql() {
  const current = await readFile(schemaPath, 'utf8');
  const from = existsSync(snapshotPath)
    ? { tag: 'schemaDatamodel', files: [{ path: snapshotPath, content: await readFile(snapshotPath, 'utf8') }] }
    : { tag: 'empty' };
  // A datamodel diff reads no table; the engine still wants a database to connect to.
  await ensureDatabase(databaseUrl);
  const engine = await engineFor(databaseUrl, current);
  const result = await engine.diff({
    from,
    to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content: current }] },
    script: true,
    exitCode: null,
    filters,
  });
  return { sql: result.stdout ?? '', current };
}

/** The URL for messages, never with its password. */
function maskedUrl(u) {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}

const isEmptyDiff = (sql) => sql.trim() === '' || /^-- This is an empty migration\.?\s*$/.test(sql.trim());

async function main() {
  const [cmd, name] = process.argv.slice(2);
  if (cmd === 'apply') {
    const { created, applied } = await applyMigrations();
    if (created) console.log(`created database ${decodeURIComponent(new URL(databaseUrl).pathname.slice(1))}`);
    console.log(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'database is up to date');
  } else if (cmd === 'diff') {
    if (!name || !/^[a-z0-9_]+$/.test(name)) throw new Error('usage: npm run db:diff -- <name> (lowercase letters, digits, _)');
    const { sql, current } = await diffSql();
    if (isEmptyDiff(sql)) {
      console.log('schema.prisma has no changes since the last migration');
      return;
    }
    const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
    const dir = path.join(migrationsDir, `${stamp}_${name}`);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'migration.sql'), sql);
    await writeFile(snapshotPath, current);
    if (!existsSync(path.join(migrationsDir, LOCK))) {
      await writeFile(path.join(migrationsDir, LOCK), '# Please do not edit this file manually\nprovider = "postgresql"\n');
    }
    console.log(`wrote ${path.relative(process.cwd(), dir)}/migration.sql`);
  } else if (cmd === 'check') {
    const { sql } = await diffSql();
    if (!isEmptyDiff(sql)) {
      console.error('schema.prisma has changes no migration covers; run: npm run db:diff -- <name>\n' + sql);
      process.exit(1);
    }
    console.log('migrations cover schema.prisma');
  } else {
    throw new Error('usage: migrate.mjs apply | diff <name> | check');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (e) => {
      const msg =
        e?.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(String(e?.message))
          ? `cannot reach Postgres at ${maskedUrl(databaseUrl)}: is it running? (docker compose up -d postgres)`
          : (e?.message ?? String(e));
      console.error(`migrate: ${msg}`);
      process.exit(1);
    },
  );
}
