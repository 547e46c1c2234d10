import type { ToolCallDelta, UpstreamEvent } from '../upstream/types';
import type { Final, RunSink } from './run-chat';

/** What a stream's consumer takes next: a text event, a tool-call event, or the end of the run. */
export type StreamItem =
  | { readonly kind: 'text'; readonly model: string; readonly text: string }
  | { readonly kind: 'tools'; readonly model: string; readonly deltas: readonly ToolCallDelta[] }
  | { readonly kind: 'end'; readonly final: Final }
  | { readonly kind: 'error'; readonly error: unknown };

type PendingText = { readonly kind: 'text'; readonly model: string; readonly parts: string[]; readonly alone: boolean };
type Pending = PendingText | { readonly kind: 'tools'; readonly model: string; readonly deltas: readonly ToolCallDelta[] };

/**
 * Turns a run's reads into chatStream events, the product's rule: the first output chunk goes out alone, at once;
 * later content chunks are coalesced, one event per upstream network read (more than one read when the consumer is
 * slower than the upstream: events never queue up behind a slow client, their text merges). Tool-call pieces are
 * events of their own, in order with the text around them. With `flushMs` > 0 a text event is held until flushMs
 * after the previous event (a tool-call event or the end flushes it at once), for clients that want fewer events.
 * Token counts are the router's (one per upstream chunk) and never depend on this.
 */
export class StreamQueue implements RunSink {
  private readonly pending: Pending[] = [];
  private sawOutput = false;
  private ending: StreamItem | null = null;
  private lastTakenAt = Number.NEGATIVE_INFINITY;
  private wake: (() => void) | null = null;
  /** The consumer waits for a flush deadline: more text does not wake it, anything else does. */
  private holdingText = false;

  constructor(private readonly flushMs: number) {}

  output(model: string, events: readonly UpstreamEvent[]): void {
    let open: PendingText | null = this.mergeableTail(model);
    let wakeAnyway = false;
    for (const ev of events) {
      if (ev.type === 'delta') {
        if (!this.sawOutput) {
          this.pending.push({ kind: 'text', model, parts: [ev.text], alone: true });
        } else if (open) {
          open.parts.push(ev.text);
          continue;
        } else {
          open = { kind: 'text', model, parts: [ev.text], alone: false };
          this.pending.push(open);
          continue;
        }
      } else if (ev.type === 'tool_calls') {
        this.pending.push({ kind: 'tools', model, deltas: ev.deltas });
        wakeAnyway = true;
      } else continue;
      this.sawOutput = true;
      open = null;
    }
    if (!this.holdingText || wakeAnyway) this.notify();
  }

  /** Stream mode never discards (the mid-stream rule keeps the model); nothing delivered can be taken back. */
  discard(): void {}

  end(final: Final): void {
    this.ending = { kind: 'end', final };
    this.notify();
  }

  fail(error: unknown): void {
    this.ending = { kind: 'error', error };
    this.notify();
  }

  async next(): Promise<StreamItem> {
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
    if (this.flushMs <= 0 || head.kind !== 'text' || head.alone || this.pending.length > 1 || this.ending) return 0;
    return this.lastTakenAt + this.flushMs - performance.now();
  }

  private take(): StreamItem {
    const head = this.pending.shift()!;
    this.lastTakenAt = performance.now();
    return head.kind === 'text' ? { kind: 'text', model: head.model, text: head.parts.join('') } : head;
  }

  /** The last pending text event, if later chunks of the same model may join it (never the lone first one). */
  private mergeableTail(model: string): PendingText | null {
    const tail = this.pending[this.pending.length - 1];
    return tail?.kind === 'text' && !tail.alone && tail.model === model ? tail : null;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
