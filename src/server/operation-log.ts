import { performance } from 'node:perf_hooks';
import type { Logger } from '../infra/logger';
import type { Metrics } from './metrics';

/**
 * gateway_graphql_operations_total and the one log line of an operation, on every transport (HTTP through Apollo's
 * response plugin; graphql-ws, SSE and multipart): its first error's code or OK, and the errorIds of masked errors so
 * a client's report finds the logged cause. Callers record each operation once.
 */
export function makeOperationRecorder(metrics: Metrics) {
  return (o: { name: string; log: Logger; transport: string; startedAt: number; errors?: readonly { extensions?: Readonly<Record<string, unknown>> }[] }) => {
    const c = o.errors?.[0]?.extensions?.code;
    const code = !o.errors?.length ? 'OK' : typeof c === 'string' ? c : 'INTERNAL_SERVER_ERROR';
    metrics.operations.inc({ operation: metrics.operationLabel(o.name), code });
    const errorIds = (o.errors ?? []).map((e) => e.extensions?.errorId).filter((x): x is string => typeof x === 'string');
    const entry = { operation: o.name, code, ms: Math.round(performance.now() - o.startedAt), transport: o.transport };
    if (errorIds.length) o.log.error({ ...entry, errorIds }, 'graphql operation failed with an internal error');
    else o.log.info(entry, 'graphql operation');
  };
}

export type OperationRecorder = ReturnType<typeof makeOperationRecorder>;
