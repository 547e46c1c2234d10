import { unavailableBackend } from '../../src/infra/backend-errors';

/** Which driver errors the edge answers with SERVICE_UNAVAILABLE (issue 11 item 7), and which stay masked 500s. */
describe('unavailableBackend', () => {
  const adapter = (kind: string, extra: Record<string, unknown> = {}) => ({
    code: 'P2010',
    meta: { driverAdapterError: { name: 'DriverAdapterError', cause: { kind, ...extra } } },
  });

  it.each<[string, unknown]>([
    ['Prisma P1001 (cannot reach the server)', { code: 'P1001', message: "Can't reach database server" }],
    ['Prisma P2024 (pool timeout)', { code: 'P2024', message: 'Timed out fetching a new connection' }],
    ['a driver adapter DatabaseNotReachable', adapter('DatabaseNotReachable', { host: '127.0.0.1', port: 1 })],
    ['a driver adapter ConnectionClosed', adapter('ConnectionClosed')],
    ['a Postgres admin shutdown (57P01) through the adapter', adapter('postgres', { originalCode: '57P01' })],
    ['pg: Connection terminated unexpectedly', new Error('Connection terminated unexpectedly')],
    ['pg: connect timeout', new Error('timeout exceeded when trying to connect')],
    ['a SQLSTATE 08006 on a pg error', Object.assign(new Error('connection failure'), { code: '08006' })],
    [
      'ECONNREFUSED nested as a cause',
      new Error('query failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) }),
    ],
  ])('%s: Postgres', (_label, e) => expect(unavailableBackend(e)).toBe('Postgres'));

  it.each<[string, unknown]>([
    ["ioredis: Stream isn't writeable (offline queue off)", new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['ioredis: Connection is closed', new Error('Connection is closed.')],
    ['Redis refusing writes (OOM)', new Error("OOM command not allowed when used memory > 'maxmemory'.")],
    ['a replica (READONLY)', new Error("READONLY You can't write against a read only replica.")],
    ['MaxRetriesPerRequestError', Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' })],
  ])('%s: Redis', (_label, e) => expect(unavailableBackend(e)).toBe('Redis'));

  it.each<[string, unknown]>([
    ['a unique violation (P2002)', { code: 'P2002', message: 'Unique constraint failed' }],
    ['a syntax error (42601) through the adapter', adapter('postgres', { originalCode: '42601' })],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a Lua script error', new Error('ERR user_script:3: attempt to compare nil with number')],
    ['nothing', undefined],
  ])('%s: not an outage (stays a masked 500)', (_label, e) => expect(unavailableBackend(e)).toBeNull());
});
