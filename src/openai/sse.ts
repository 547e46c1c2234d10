import { once } from 'node:events';
import type { Response } from 'express';

/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]` at a normal end. Writes
 * wait for the socket to drain, so a slow reader slows the stream instead of growing the process's memory.
 */
export class SseWriter {
  constructor(private readonly res: Response) {}

  /** Sends the status line and headers now, so the client sees the stream begin. */
  start(headers: Readonly<Record<string, string>>): void {
    this.res.status(200);
    this.res.set({ ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    this.res.flushHeaders();
  }

  async data(value: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(value)}\n\n`);
  }

  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.res.end();
  }

  /** Ends the stream after an error event: no [DONE], so no client mistakes it for a complete answer. */
  async fail(body: unknown): Promise<void> {
    await this.data(body);
    this.res.end();
  }

  private async write(text: string): Promise<void> {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.res.write(text)) await Promise.race([once(this.res, 'drain'), once(this.res, 'close')]);
  }
}
