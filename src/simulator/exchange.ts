import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

/** The timer functions the simulator uses; injectable so tests can see that no timer outlives its response. */
export interface SimTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_TIMERS: SimTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** How an exchange ended, reported once when its response closes. */
export type ExchangeEnd = 'completed' | 'closed_by_server' | 'aborted_by_client';

/**
 * One chat completion response in flight: its clock (offsets from the request's arrival), its one pending timer,
 * and how it ended. A response waits on at most one timer at a time; that timer is cleared the moment the response
 * closes, whoever closed it, so an aborted client leaves nothing scheduled behind.
 */
export class Exchange {
  private timer: unknown = undefined;
  private closedByServer = false;
  private closed = false;

  constructor(
    readonly res: ServerResponse,
    private readonly startedAt: number,
    private readonly timers: SimTimers,
    onEnd: (end: ExchangeEnd) => void,
  ) {
    res.once('close', () => {
      this.closed = true;
      this.clearTimer();
      onEnd(res.writableFinished ? 'completed' : this.closedByServer ? 'closed_by_server' : 'aborted_by_client');
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Runs fn once offsetMs have passed since the request arrived: synchronously, with no timer, when already due. */
  at(offsetMs: number, fn: () => void): void {
    this.after(offsetMs - this.elapsedMs(), fn);
  }

  /** Runs fn after delayMs: synchronously, with no timer, when delayMs <= 0. */
  after(delayMs: number, fn: () => void): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      fn();
      return;
    }
    this.clearTimer();
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) fn();
    }, delayMs);
  }

  /**
   * Closes the connection mid-response (the cut, stall and timeout faults). Whatever was written is flushed first
   * (node's http layer corks the socket until the next tick), then the socket ends and is destroyed, so the client
   * sees exactly the bytes written so far followed by a closed connection.
   */
  closeConnection(): void {
    if (this.closed) return;
    this.closedByServer = true;
    this.clearTimer();
    const socket = this.res.socket;
    if (socket === null || socket.destroyed) {
      this.res.destroy();
      return;
    }
    socket.end(() => socket.destroy());
  }

  /** Ends the response at once, nothing flushed (the simulator is shutting down). */
  shutdown(): void {
    if (this.closed) return;
    this.closedByServer = true;
    this.clearTimer();
    this.res.destroy();
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
