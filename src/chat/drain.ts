import { setMaxListeners } from 'node:events';

/**
 * Graceful shutdown of chat runs. `drain(timeoutMs)` marks the process draining (the edge then refuses new
 * operations with SERVICE_UNAVAILABLE and /readyz answers 503), waits for the runs in flight to finish, and at the
 * deadline aborts `deadline`: every run still going ends with outcome SHUTDOWN and settles. It resolves once every
 * run has left (settled, and its final event handed to the client), so clients can be closed after it.
 */
export interface Drain {
  readonly draining: boolean;
  /** Aborted at the drain deadline; runs listen to it. */
  readonly deadline: AbortSignal;
  /** Registers a run; call the returned function exactly once when it has ended. */
  enter(): () => void;
  readonly inFlight: number;
  drain(timeoutMs: number): Promise<{ finished: number; ended: number }>;
}

/** The abort reason runs see when the drain deadline ends them. */
export class ShutdownAbort extends Error {
  override readonly name = 'ShutdownAbort';
  constructor() {
    super('the server is shutting down');
  }
}

export function makeDrain(): Drain {
  const deadline = new AbortController();
  setMaxListeners(0, deadline.signal); // one listener per run in flight, thousands of them by design
  let draining = false;
  let count = 0;
  let idle: (() => void) | null = null;
  const whenIdle = () => (count === 0 ? Promise.resolve() : new Promise<void>((r) => (idle = r)));

  return {
    get draining() {
      return draining;
    },
    deadline: deadline.signal,
    get inFlight() {
      return count;
    },
    enter() {
      count++;
      let left = false;
      return () => {
        if (left) return;
        left = true;
        count--;
        if (count === 0) idle?.();
      };
    },
    async drain(timeoutMs) {
      draining = true;
      const before = count;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      const first = await Promise.race([whenIdle().then(() => 'idle' as const), timedOut]);
      clearTimeout(timer);
      if (first === 'idle') return { finished: before, ended: 0 };
      const ended = count;
      deadline.abort(new ShutdownAbort());
      await whenIdle();
      return { finished: before - ended, ended };
    },
  };
}
