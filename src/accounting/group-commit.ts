/**
 * Group commit: many callers' writes go to Postgres as one statement per flush.
 *
 * When nothing is in flight, a submitted item is flushed at once, alone: one request at a time pays no wait and no
 * timer. While a flush is in flight, items submitted meanwhile collect, and go together as the next flush the moment
 * it ends; so under load one round trip (and one commit) serves many requests, and a request never waits for more than
 * the flush ahead of it plus its own. Each caller's promise settles with its own item's result: the writer says per
 * item what happened (a row that did not land fails only its own caller); a writer that throws fails every item of
 * that flush, and only of that flush.
 */
export interface GroupCommit<T, R> {
  submit(item: T): Promise<R>;
  /** Items waiting for the next flush (not counting the one in flight). */
  readonly queued: number;
}

/** One item's outcome: its result, or the error its own caller gets. */
export type ItemOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: Error };

export interface GroupCommitOptions<T, R> {
  /** Writes a batch (in submission order, never empty) and returns one outcome per item, in the same order. */
  readonly write: (items: readonly T[]) => Promise<readonly ItemOutcome<R>[]>;
  /** At most this many items per flush; the rest wait for the next one. */
  readonly maxBatch?: number;
  /** Flushes running at once (each on its own pooled connection). Default 1: the purest grouping. */
  readonly maxInFlight?: number;
}

interface Waiter<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
}

export function makeGroupCommit<T, R>(opts: GroupCommitOptions<T, R>): GroupCommit<T, R> {
  const maxBatch = opts.maxBatch ?? 256;
  const maxInFlight = opts.maxInFlight ?? 1;
  const waiting: Waiter<T, R>[] = [];
  let inFlight = 0;

  const flush = (): void => {
    while (inFlight < maxInFlight && waiting.length > 0) {
      const batch = waiting.splice(0, maxBatch);
      inFlight++;
      void writeBatch(batch).finally(() => {
        inFlight--;
        flush();
      });
    }
  };

  const writeBatch = async (batch: Waiter<T, R>[]): Promise<void> => {
    let outcomes: readonly ItemOutcome<R>[];
    try {
      outcomes = await opts.write(batch.map((w) => w.item));
      if (outcomes.length !== batch.length) throw new Error(`group commit: ${outcomes.length} outcomes for ${batch.length} items`);
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      for (const w of batch) w.reject(error);
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i]!;
      if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  };

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        flush();
      });
    },
    get queued() {
      return waiting.length;
    },
  };
}
