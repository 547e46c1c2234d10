import type { Logger } from '../infra/logger';

/**
 * What the app must close, in the reverse order it was opened: a part pushes its closer once it exists, so a
 * failed start closes exactly what had started, and shutdown closes servers before the jobs and the jobs before the
 * clients they use.
 */
export interface Closers {
  push(...closers: Array<() => Promise<unknown>>): void;
  /** Runs every closer, last pushed first; a failing one is logged and the rest still run. Idempotent. */
  closeAll(): Promise<void>;
}

export function makeClosers(logger: Logger): Closers {
  const closers: Array<() => Promise<unknown>> = [];
  return {
    push: (...c) => void closers.push(...c),
    async closeAll() {
      for (const c of closers.reverse()) await c().catch((e) => logger.warn({ err: e }, 'shutdown step failed'));
      closers.length = 0;
    },
  };
}
