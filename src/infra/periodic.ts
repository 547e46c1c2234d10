/** A background job's timer: what every periodic job (reaper, gate applier, reconciler, purges) shares. */
export interface Periodic {
  /** Starts the timer (idempotent). It never keeps the process alive. */
  start(): void;
  /** Stops the timer and waits for a pass still running. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs`, one pass at a time: a tick that finds the previous pass still running is skipped,
 * so a slow database never piles passes up. A failed pass goes to `onError` and the next tick tries again.
 */
export function periodic(pass: () => Promise<unknown>, intervalMs: number, onError: (e: unknown) => void): Periodic {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  const tick = () => {
    running ??= pass()
      .catch(onError)
      .finally(() => (running = null));
  };
  return {
    start() {
      timer ??= setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}
