/** What GET /__sim/stats answers. */
export interface StatsSnapshot {
  /** Chat completion requests per model since the last reset, counted on arrival (faulted ones included). */
  readonly requests: Record<string, number>;
  /** Chat completion responses being written right now, streamed or not, including those sitting in a delay. */
  readonly openStreams: number;
  /** Responses whose client closed the connection before the response ended, since the last reset. */
  readonly abortedByClient: number;
}

/** Running totals of the simulator. openStreams is not a total: it is read from the live responses. */
export class SimStats {
  private requests = new Map<string, number>();
  private aborted = 0;

  countRequest(model: string): void {
    this.requests.set(model, (this.requests.get(model) ?? 0) + 1);
  }

  countAbortByClient(): void {
    this.aborted++;
  }

  /** Resets the totals; open responses are live state and stay as they are. */
  reset(): void {
    this.requests = new Map();
    this.aborted = 0;
  }

  snapshot(openStreams: number): StatsSnapshot {
    return { requests: Object.fromEntries(this.requests), openStreams, abortedByClient: this.aborted };
  }
}
