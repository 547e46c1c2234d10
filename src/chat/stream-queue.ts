import type { ToolCallDelta, UpstreamEvent } from '../upstream/types';

/** What the run's consumer takes next: content, a discard, or the end of the walk. */
export type QueueItem =
  | { readonly type: 'delta'; readonly model: string; readonly text: string }
  | { readonly type: 'tool_calls'; readonly model: string; readonly deltas: readonly ToolCallDelta[] }
  /** Collect mode: the attempt so far failed after partial content; what was taken of it is void. */
  | { readonly type: 'discard' }
  | { readonly type: 'end' }
  | { readonly type: 'error'; readonly error: unknown };

type PendingText = { readonly type: 'text'; readonly model: string; readonly parts: string[]; readonly alone: boolean };
type Pending = PendingText | { readonly type: 'tool_calls'; readonly model: string; readonly deltas: readonly ToolCallDelta[] } | { readonly type: 'discard' };

/**
 * Between the walk, which hands over each upstream network read synchronously, and the consumer, which pulls one
 * event at a time: the product's rule for events. The first output chunk goes out alone, at once; later content
 * chunks are coalesced, one event per read (more than one read when the consumer is slower than the upstream:
 * events never queue up behind a slow client, their text merges). Tool-call pieces are events of their own, in order
 * with the text around them. With `flushMs` > 0 a text event is held until flushMs after the previous event (a
 * tool-call event, a discard or the end flushes it at once). Token counts are the router's (one per upstream chunk)
 * and never depend on this.
 */
export class StreamQueue {
  private readonly pending: Pending[] = [];
  private sawOutput = false;
  private ending: QueueItem | null = null;
  private lastTakenAt = Number.NEGATIVE_INFINITY;
  private wake: (() => void) | null = null;
  /** The consumer waits for a flush deadline: more text does not wake it, anything else does. */
  private holdingText = false;

  constructor(private readonly flushMs: number) {}

  /** The events of one read: content and tool-call pieces become events; usage and finish are not events. */
  output(model: string, events: readonly UpstreamEvent[]): void {
    let open: PendingText | null = this.mergeableTail(model);
    let wakeAnyway = false;
    for (const ev of events) {
      if (ev.type === 'delta') {
        if (!this.sawOutput) {
          this.pending.push({ type: 'text', model, parts: [ev.text], alone: true });
        } else if (open) {
          open.parts.push(ev.text);
          continue;
        } else {
          open = { type: 'text', model, parts: [ev.text], alone: false };
          this.pending.push(open);
          continue;
        }
      } else if (ev.type === 'tool_calls') {
        this.pending.push({ type: 'tool_calls', model, deltas: ev.deltas });
        wakeAnyway = true;
      } else continue;
      this.sawOutput = true;
      open = null;
    }
    if (!this.holdingText || wakeAnyway) this.notify();
  }

  /** Collect mode: the attempt's content is void. What is still pending goes; the consumer drops what it took. */
  discard(): void {
    this.pending.length = 0;
    this.pending.push({ type: 'discard' });
    this.sawOutput = false;
    this.notify();
  }

  end(): void {
    this.ending = { type: 'end' };
    this.notify();
  }

  fail(error: unknown): void {
    this.ending = { type: 'error', error };
    this.notify();
  }

  async next(): Promise<QueueItem> {
    for (;;) {
      const head = this.pending[0];
      if (head) {
        const wait = this.holdFor(head);
        if (wait <= 0) return this.take();
        this.holdingText = true;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.holdingText = false;
        continue;
      }
      if (this.ending) return this.ending;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** How long the head must still wait for the flush interval: only a lone text event, while the run goes on. */
  private holdFor(head: Pending): number {
    if (this.flushMs <= 0 || head.type !== 'text' || head.alone || this.pending.length > 1 || this.ending) return 0;
    return this.lastTakenAt + this.flushMs - performance.now();
  }

  private take(): QueueItem {
    const head = this.pending.shift()!;
    this.lastTakenAt = performance.now();
    return head.type === 'text' ? { type: 'delta', model: head.model, text: head.parts.join('') } : head;
  }

  /** The last pending text event, if later chunks of the same model may join it (never the lone first one). */
  private mergeableTail(model: string): PendingText | null {
    const tail = this.pending[this.pending.length - 1];
    return tail?.type === 'text' && !tail.alone && tail.model === model ? tail : null;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
