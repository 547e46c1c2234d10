/**
 * Recognises a driver error that means "the database or Redis cannot be reached right now" (as opposed to a bug
 * or a bad statement), so the edge answers SERVICE_UNAVAILABLE (503) for it everywhere instead of masking it as a
 * 500. Pure: looks at codes and messages only, through the `cause` chain and Prisma's driver-adapter metadata.
 */
export type Backend = 'Postgres' | 'Redis';

/** Socket-level errno codes: the peer is gone, refusing, or too slow. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
/** Prisma's connection-level codes: unreachable, timed out, closed, pool exhausted. */
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** Prisma driver-adapter error kinds that mean the connection, not the statement, failed. */
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TransactionAlreadyClosed']);
/** SQLSTATEs: class 08 (connection exception), shutting down / cannot connect now, too many connections. */
const isUnavailableSqlState = (s: string): boolean => s.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(s);
const PG_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Can't reach database server|Connection closed/i;
const REDIS_MESSAGES =
  /Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|Reached the max retries per request|^OOM |^LOADING |^READONLY |^MASTERDOWN |^CLUSTERDOWN |^TRYAGAIN /;

type Loose = {
  code?: unknown;
  message?: unknown;
  name?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown } } };
};

export function unavailableBackend(e: unknown): Backend | null {
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 8; cur = (cur as Loose).cause, depth++) {
    const x = cur as Loose;
    const code = typeof x.code === 'string' ? x.code : '';
    const message = typeof x.message === 'string' ? x.message : '';
    const name = typeof x.name === 'string' ? x.name : '';
    if (PRISMA_CODES.has(code)) return 'Postgres';
    const adapter = x.meta?.driverAdapterError?.cause;
    if (adapter && typeof adapter.kind === 'string') {
      if (ADAPTER_KINDS.has(adapter.kind)) return 'Postgres';
      if (typeof adapter.originalCode === 'string' && isUnavailableSqlState(adapter.originalCode)) return 'Postgres';
    }
    const kind = name === 'DriverAdapterError' ? (x.cause as { kind?: unknown } | undefined)?.kind : undefined;
    if (typeof kind === 'string' && ADAPTER_KINDS.has(kind)) return 'Postgres';
    if (/^\d{2}[0-9A-Z]{3}$/.test(code) && isUnavailableSqlState(code)) return 'Postgres';
    if (PG_MESSAGES.test(message)) return 'Postgres';
    if (name === 'MaxRetriesPerRequestError' || REDIS_MESSAGES.test(message)) return 'Redis';
    if (SOCKET_CODES.has(code)) return /redis/i.test(message) ? 'Redis' : 'Postgres';
  }
  return null;
}
