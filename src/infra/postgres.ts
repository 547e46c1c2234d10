import pg from 'pg';

export type SqlPool = Pick<pg.Pool, 'query' | 'end'>;

/**
 * A plain pg pool for the two statements on every request's path (the write-ahead insert and the settlement).
 * Measured here, Prisma's per-statement work is most of the gateway's Postgres CPU; a named prepared statement over
 * pg is a fraction of it. Everything else goes through Prisma.
 */
export function createSqlPool(databaseUrl: string, opts: { max?: number } = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: opts.max ?? 10, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => undefined); // an idle client's broken connection: the pool drops it, the next query reconnects
  return pool;
}
